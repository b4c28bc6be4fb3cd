"""`python -m monitor ...` is `feedwatch ...` (for when pip's script folder is not on PATH)."""

import sys

from monitor.cli import main

sys.exit(main())
