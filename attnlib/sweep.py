"""Independent runs (experiment settings, seed groups) through joblib, so a cluster is one context away.

:func:`sweep` hands each task to ``joblib.Parallel`` and never names a backend: outside any
``joblib.parallel_config`` it runs the tasks one after another (``n_jobs=None``) or on ``n_jobs``
local worker processes (joblib's default, loky); inside one it uses whatever that context says, e.g.

    from dask.distributed import Client
    import joblib
    client = Client("tcp://scheduler:8786")
    with joblib.parallel_config(backend="dask"):
        run_sst(n_jobs=-1)

(:func:`on_cluster` does both: ``with on_cluster("tcp://scheduler:8786"): run_sst()``; the command line's
``--scheduler ADDRESS``), or, with Ray, ``from ray.util.joblib import register_ray; register_ray()`` and
``joblib.parallel_config(backend="ray")``. The results are the same bytes wherever a task runs: training
pins torch's thread count itself (:func:`attnlib.train.pinned_threads`). Seeds of one setting are not split into tasks: they
train together in one batched call (:func:`attnlib.train.train`), which costs far less than
separate runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import joblib

Result = TypeVar("Result")

CONNECT_TIMEOUT_S = 30
"""Seconds :func:`on_cluster` waits for a Dask scheduler to answer before giving up with one line."""


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


class ClusterError(RuntimeError):
    """A Dask scheduler could not be used: Dask is not installed, or the scheduler did not answer."""


@contextmanager
def on_cluster(address: str) -> Iterator[Any]:
    """Inside the block every :func:`sweep` runs its tasks on the Dask cluster whose scheduler is at
    ``address`` (e.g. ``tcp://10.0.0.5:8786``), one task per worker thread; yields the
    ``distributed.Client``. Needs the optional extra ``attnlib[dask]``; each worker needs attnlib (and,
    for SST, the data files). A missing Dask or a scheduler that does not answer within
    :data:`CONNECT_TIMEOUT_S` is a :class:`ClusterError` with one line."""
    try:
        from dask.distributed import Client  # noqa: PLC0415 - Dask is optional (attnlib[dask]) and slow to import
    except ImportError:
        raise ClusterError("a Dask scheduler needs Dask: pip install 'attnlib[dask]' (dask[distributed])") from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as error:
        raise ClusterError(f"cannot use the Dask scheduler at {address}: {error}") from None
    try:
        with joblib.parallel_config(backend="dask"):
            yield client
    finally:
        client.close()
