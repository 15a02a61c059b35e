"""``python -m n2nkit`` is the same as the ``n2nkit`` command."""

from n2nkit.cli import main

main()
