"""Independent runs (experiment settings, seed groups) through joblib, so a cluster is one context away.

:func:`sweep` hands each task to ``joblib.Parallel`` and never names a backend: outside any
``joblib.parallel_config`` it runs the tasks one after another (``n_jobs=None``) or on ``n_jobs``
local worker processes (joblib's default, loky); inside one it uses whatever that context says, e.g.

    from dask.distributed import Client
    import joblib
    client = Client("tcp://scheduler:8786")
    with joblib.parallel_config(backend="dask"):
        run_sst(n_jobs=-1)

or, with Ray, ``from ray.util.joblib import register_ray; register_ray()`` and
``joblib.parallel_config(backend="ray")``. Seeds of one setting are not split into tasks: they
train together in one batched call (:func:`attnlib.train.train`), which costs far less than
separate runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import joblib

Result = TypeVar("Result")


class SweepError(RuntimeError):
    """A task of a sweep failed; the message names the task, ``error`` is the original error (also when
    the task ran in a worker process: it travels with this one), ``__cause__`` too when the task ran in
    this process. The command line reports an expected ``error`` (bad data, divergence) as its own one line."""

    def __init__(self, message: str, error: BaseException | None = None) -> None:
        super().__init__(message)
        self.error = error

    def __reduce__(self):  # pickled with the original error, so it survives a worker process
        return type(self), (self.args[0], self.error)


def _name(function: Callable[..., Any]) -> str:
    """A callable's name for messages (partials and callable objects included)."""
    inner = getattr(function, "func", function)
    return getattr(inner, "__name__", type(inner).__name__)


def _describe(arguments: tuple) -> str:
    text = ", ".join(repr(a) for a in arguments)
    return text if len(text) <= 200 else text[:197] + "..."


def _run_task(function: Callable[..., Result], index: int, arguments: tuple, keywords: dict[str, Any]) -> Result:
    """Call one task, re-raising any failure as a :class:`SweepError` that says which task it was."""
    try:
        return function(*arguments, **keywords)
    except Exception as error:
        raise SweepError(f"sweep: task {index} {_name(function)}({_describe(arguments)}) failed with "
                         f"{type(error).__name__}: {error}", error) from error


def sweep(function: Callable[..., Result], tasks: Iterable[tuple], n_jobs: int | None = None,
          **keywords: Any) -> list[Result]:
    """``[function(*task, **keywords) for task in tasks]``, computed through ``joblib.Parallel``.

    Each task is a tuple of positional arguments; ``keywords`` are shared by every task. Results come
    back in the order of ``tasks``. ``n_jobs``: workers (-1: one per core); None leaves it to the
    enclosing ``joblib.parallel_config`` (1 outside any). The backend is always joblib's context's,
    so Dask or Ray take over without code changes (see the module docstring). The first failing task
    stops the sweep with a :class:`SweepError` naming it.
    """
    tasks = [tuple(task) for task in tasks]
    call = joblib.delayed(_run_task)
    try:
        return list(joblib.Parallel(n_jobs=n_jobs)(call(function, index, task, keywords)
                                                   for index, task in enumerate(tasks)))
    except SweepError:
        raise
    except Exception as error:  # a failure outside the task itself: pickling, a lost worker, the cluster
        raise SweepError(f"sweep of {len(tasks)} {_name(function)} tasks failed with {type(error).__name__}: {error}",
                         error) from error
