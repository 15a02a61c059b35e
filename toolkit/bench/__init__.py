"""``n2nkit compare``'s engine: every model × target measured in a fresh worker process
(:mod:`n2nkit.bench.compare_worker`), the baselines, the shared timing loop, and the report.

The CLI (:mod:`n2nkit.cli.compare`) calls :func:`n2nkit.bench.compare.compare`; nothing in
training, export or the runtime imports this package.
"""
