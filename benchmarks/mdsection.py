"""Rewrite one ``## Heading`` section of docs/benchmarks.md, leaving the others untouched.

Each benchmark script owns one section; running it again replaces that section only.
"""

from __future__ import annotations

import re
from pathlib import Path

from n2nkit.fileio import atomic_write_text


def replace_section(md: Path, heading: str, text: str) -> None:
    """Put ``text`` (which starts with ``## heading``) in place of that section, or append it."""
    old = md.read_text(encoding="utf-8") if md.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _m: text.rstrip() + "\n\n", old).rstrip() + "\n"
    else:
        new = old.rstrip() + "\n\n" + text.rstrip() + "\n"
    atomic_write_text(md, new)


def publish(text: str, md: Path | None, heading: str) -> None:
    """Print a benchmark's section, and put it into ``md`` when one is given."""
    print(text)
    if md:
        replace_section(md, heading, text)
