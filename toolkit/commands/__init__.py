"""One module per CLI command; :mod:`n2nkit.cli` composes them. Each imports only typer at
module level, so ``n2nkit --help`` never loads torch."""
