"""Writing output files atomically: a run killed at any moment leaves the previous file or the new one,
never half a file. (The result cache adds an fsync on top; see :mod:`attnlib.cache`.)"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary)`` on a temporary file beside ``path``, then rename it onto ``path``."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """``path.write_text(text)`` (UTF-8), atomically."""
    atomic_write(path, lambda target: target.write_text(text, encoding="utf-8"))


def write_json(path: Path, payload: Any, **options: Any) -> None:
    """``payload`` as indented JSON with a final newline, atomically; ``options`` go to :func:`json.dumps`."""
    write_text(path, json.dumps(payload, indent=2, **options) + "\n")
