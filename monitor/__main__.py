"""`python -m monitor ...` is `feedwatch ...` (for when pip's script folder is not on PATH)."""

from monitor.cli import console

console()
