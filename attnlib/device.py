"""The one place that picks the compute device: ``ATTNLIB_DEVICE`` if set, else CUDA when present, else CPU."""

from __future__ import annotations

import os

import torch


def default_device() -> torch.device:
    """The device experiments run on unless told otherwise."""
    requested = os.environ.get("ATTNLIB_DEVICE")
    if requested:
        try:
            return torch.device(requested)
        except RuntimeError as error:
            raise ValueError(f"ATTNLIB_DEVICE={requested!r} is not a torch device (e.g. 'cpu', 'cuda:0')") from error
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
