"""Provenance: what produced a figure, a metrics file or a chapter, as a small JSON-ready dict.

The record names the attnlib version, the git commit of the checkout (and whether it had uncommitted
changes), the configuration hash(es), the seeds, the device and the software versions. It holds no
timestamp and nothing else that changes between two runs of the same code on the same machine, so
files that embed it stay byte-reproducible.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from attnlib import __version__
from attnlib.config import RunConfig, SSTDataConfig, SyntheticDataConfig
from attnlib.device import default_device

if TYPE_CHECKING:
    from attnlib.train import TrainResult

UNKNOWN = "unknown"
ROOT = Path(__file__).resolve().parents[1]
"""The folder holding the ``attnlib`` package: a git checkout when attnlib runs from source."""
GIT_TIMEOUT_S = 10
FOOTER_HASHES = 3
"""A footer lists at most this many configuration hashes; more are summarised by one digest."""


def _git(*args: str) -> str | None:
    """Output of ``git args`` in :data:`ROOT`, or None when git is missing or fails."""
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state() -> tuple[str, bool | None]:
    """(commit, dirty) of the checkout attnlib is imported from; ("unknown", None) when there is none.

    An installed attnlib (site-packages) may sit inside some other repository, so the checkout only
    counts when its top level is the folder holding this package.
    """
    top = _git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != ROOT:
        return UNKNOWN, None
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return UNKNOWN, None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit, None if status is None else bool(status)


def _seed_list(seeds: Iterable[int] | int | None) -> list[int] | None:
    if seeds is None:
        return None
    if isinstance(seeds, int):
        return [int(seeds)]
    return [int(s) for s in seeds]


def provenance(config_hashes: Mapping[str, str] | str | None = None, seeds: Iterable[int] | int | None = None,
               device: str | torch.device | None = None) -> dict[str, Any]:
    """The provenance record of a result: versions, git state, config hash(es), seeds, device, platform.

    ``config_hashes`` is one hash or a mapping run name -> hash (stored as ``config_hashes``, a single
    hash under the name ``config``); ``device`` defaults to :func:`attnlib.device.default_device`.
    Keys are fixed and values are plain JSON types; there is deliberately no timestamp.
    """
    if isinstance(config_hashes, str):
        hashes = {"config": config_hashes}
    else:
        hashes = {str(k): str(v) for k, v in (config_hashes or {}).items()}
    commit, dirty = git_state()
    return {"attnlib_version": __version__, "git_commit": commit, "git_dirty": dirty, "config_hashes": hashes,
            "seeds": _seed_list(seeds), "device": str(device if device is not None else default_device()),
            "torch_version": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine()}


def run_config_hashes(runs: Mapping[Any, TrainResult], data: SyntheticDataConfig | SSTDataConfig,
                      name: Callable[[Any], str] = str) -> dict[str, str]:
    """Config hash of each training run: its own model and training config with the data config ``data``.

    ``name`` turns a run's key into the name it is listed under (keys may be tuples).
    """
    return {name(key): RunConfig(data=data, model=run.model, train=run.train_config).config_hash()
            for key, run in runs.items()}


def _seed_text(seeds: list[int] | None) -> str:
    """``seeds 0-4``, ``seeds 0, 2, 7`` or ``seed 3``."""
    if not seeds:
        return "no seeds"
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    ordered = sorted(set(seeds))
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) == len(seeds):
        return f"seeds {ordered[0]}-{ordered[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def hashes_digest(hashes: Mapping[str, str]) -> str:
    """One short hash over all (name, config hash) pairs, order-independent."""
    text = json.dumps(dict(sorted(hashes.items())), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _hash_text(hashes: Mapping[str, str]) -> str:
    if not hashes:
        return "no configuration hash"
    if list(hashes) == ["config"]:
        return f"config hash `{hashes['config']}`"
    if len(hashes) <= FOOTER_HASHES:
        return "config hashes " + ", ".join(f"{name} `{h}`" for name, h in hashes.items())
    return f"{len(hashes)} configurations (digest `{hashes_digest(hashes)}`)"


def footer_markdown(info: Mapping[str, Any]) -> str:
    """One Markdown line for a chapter footer, e.g. "Built with attnlib 0.1.0 (commit abc1234), torch 2.x,
    on cpu; seeds 0-4; config hash `…`." Many config hashes are summarised by one digest."""
    commit = str(info.get("git_commit", UNKNOWN))
    if commit != UNKNOWN:
        commit = f"commit `{commit[:7]}`" + (", with local changes" if info.get("git_dirty") else "")
    else:
        commit = "commit unknown"
    return (f"Built with attnlib {info.get('attnlib_version', UNKNOWN)} ({commit}), "
            f"torch {info.get('torch_version', UNKNOWN)}, on {info.get('device', UNKNOWN)}; "
            f"{_seed_text(info.get('seeds'))}; {_hash_text(info.get('config_hashes') or {})}.")
