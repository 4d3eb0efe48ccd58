"""Tally's benchmark, one command: `.venv/bin/python bench/run.py [--quick] [--duration-s N] [--soak-s N]
[--sqlite] [--json FILE] [--markdown]`. See bench/README.md."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
