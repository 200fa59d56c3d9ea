"""``python -m attnlib``: the command line."""

from attnlib.cli import main

raise SystemExit(main())
