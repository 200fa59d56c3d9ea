"""Benchmarks of the count-matrix engine: ``attnlib bench`` writing into this folder.

    python bench/run.py [--quick] [--reps N]

prints the tables and writes ``bench/results.json`` and ``bench/scaling.png`` / ``.pdf``. The measuring
code lives in :mod:`attnlib.benchmark` (the book's performance appendix runs it too), the command in
:mod:`attnlib.cli`. ``--quick`` runs every benchmark once at a tiny size (for the tests; its numbers
mean nothing).
"""

from __future__ import annotations

import sys
from pathlib import Path

from attnlib.cli import main

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    raise SystemExit(main(["bench", "--out", str(ROOT), *sys.argv[1:]]))
