"""What every experiment has in common: its registry entry, its checks, its result's surface, and the
long-table step.

An experiment is a module that declares what the rest of the package needs to know about it (read into
an :class:`Experiment` by :meth:`Experiment.from_module`; :data:`attnlib.experiments.EXPERIMENTS` lists
them) and whose ``run(config=None, seeds=None, quiet=True, **options)`` returns an :class:`ExperimentResult`.
A result gives its tidy tables, its figures (functions that draw them, so that many figures never stay
open together), its checks (the one place its pass criteria are written: the chapter's verdict table,
``checks.csv`` and the scorecard all read them), flat metrics and provenance.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from attnlib import __version__
from attnlib.cache import cache_key, cached_train
from attnlib.config import RunConfig
from attnlib.data import Dataset
from attnlib.provenance import provenance, run_config_hashes
from attnlib.train import TrainResult


def verdict(passed: int, needed: int, total: int) -> str:
    """reproduced: at least ``needed`` of ``total`` units meet the criterion; partly: some but too few;
    not reproduced: none; reported: no criterion (``total == 0``)."""
    if total == 0:
        return "reported"
    if passed >= needed:
        return "reproduced"
    return "partly" if passed > 0 else "not reproduced"


ORDER_MARGIN = 2.0
"""An ordering of two seed means (A below B) holds only when B − A exceeds this many standard errors of the
difference, √(s_A²/n_A + s_B²/n_B), so that seed noise alone rarely orders them (:func:`chance_by_noise`)."""


def chance_by_noise(margin: float = ORDER_MARGIN) -> float:
    """The chance that two seed means with no true difference come out ordered beyond ``margin`` standard errors,
    under a normal approximation (one-sided: the ordering claims one direction)."""
    return 0.5 * math.erfc(margin / math.sqrt(2.0))


@dataclass(frozen=True)
class Ordering:
    """Two groups of per-seed values compared by :func:`ordering`: is ``high`` above ``low`` beyond the margin?"""

    low: str
    high: str
    difference: float
    """mean(high) − mean(low)"""
    standard_error: float

    @property
    def holds(self) -> bool:
        return bool(self.difference > ORDER_MARGIN * self.standard_error)

    def describe(self, digits: int = 2) -> str:
        """``TC − FC = +0.92 (SE 0.31)``"""
        return f"{self.high} − {self.low} = {self.difference:+.{digits}f} (SE {self.standard_error:.{digits}f})"


def ordering(low: tuple[str, Sequence[float]], high: tuple[str, Sequence[float]]) -> Ordering:
    """Whether the seed mean of ``high`` (name, per-seed values) lies above that of ``low`` beyond
    :data:`ORDER_MARGIN` standard errors of their difference (seed standard deviations, ``ddof=1``)."""
    a, b = (np.asarray(v, dtype=float) for v in (low[1], high[1]))
    se = float(np.sqrt(sum(x.var(ddof=1) / len(x) if len(x) > 1 else 0.0 for x in (a, b))))
    return Ordering(low[0], high[0], float(b.mean() - a.mean()), se)


@dataclass(frozen=True)
class Check:
    """One criterion of a paper's claim: ``verdict`` follows from ``passed``, ``needed`` and ``total``.

    ``passed`` units (seeds, model-seed pairs, cells) meet the criterion, ``needed`` of ``total`` must;
    ``total == 0`` marks a value that is reported without a pass condition. ``key`` names the check for
    code that reads one (e.g. a chapter gluing its count); it is not shown.
    """

    id: str
    claim: str
    paper: str
    ours: str
    criterion: str
    passed: int
    needed: int
    total: int
    note: str = ""
    key: str = ""

    @property
    def verdict(self) -> str:
        return verdict(self.passed, self.needed, self.total)

    @property
    def reproduced(self) -> bool:
        return self.verdict == "reproduced"


def checks_frame(checks: Iterable[Check], ids: Sequence[str] | None = None) -> pd.DataFrame:
    """A chapter's verdict table: experiment, criterion (claim and its test), measured, reproduced."""
    rows = [{"experiment": c.id, "criterion": f"{c.claim}: {c.criterion}", "measured": c.ours,
             "reproduced": c.reproduced} for c in checks if c.total and (ids is None or c.id in ids)]
    return pd.DataFrame(rows, columns=["experiment", "criterion", "measured", "reproduced"])


def checks_table(checks: Iterable[Check]) -> pd.DataFrame:
    """Every field of the checks as columns (without ``key``), with the verdict (the columns also when
    there is no check)."""
    columns = [f.name for f in fields(Check) if f.name != "key"] + ["verdict"]
    return pd.DataFrame([{**{k: v for k, v in asdict(c).items() if k != "key"}, "verdict": c.verdict}
                         for c in checks], columns=columns)


def long_table(labels: Mapping[str, Any], axes: Mapping[str, Sequence], values: Mapping[str, Any],
               order: Sequence[str] = ()) -> pd.DataFrame:
    """One row per cell of arrays whose axes are ``axes`` (name -> coordinates, in the arrays' axis order).

    Columns: the constant ``labels``, then the names in ``order`` (axes or values), then the other axes
    and values in their order. A value is an array of the grid's shape, or anything that broadcasts to it.
    """
    grids = np.meshgrid(*[np.asarray(a) for a in axes.values()], indexing="ij")
    shape = grids[0].shape
    columns = {name: grid.ravel() for name, grid in zip(axes, grids)}
    columns.update({name: np.broadcast_to(np.asarray(v), shape).ravel() for name, v in values.items()})
    names = list(order) + [name for name in columns if name not in order]
    return pd.DataFrame({**labels, **{name: columns[name] for name in names}})


@dataclass
class ExperimentResult:
    """Fields and methods every experiment's result shares; subclasses add their runs and tables."""

    config: RunConfig
    """The configuration the experiment's runs are derived from."""
    seeds: list[int]

    def tables(self) -> dict[str, pd.DataFrame]:
        """Tidy tables by file name (``attnlib run`` writes each as NAME.csv)."""
        return {}

    def figures(self) -> dict[str, Callable[[], Any]]:
        """Figure name -> a function drawing it (``attnlib run`` writes NAME.png and NAME.pdf)."""
        return {}

    def checks(self) -> list[Check]:
        """The experiment's criteria with their measured values (none by default)."""
        return []

    def check(self, key: str) -> Check:
        """The check named ``key``."""
        found = [c for c in self.checks() if c.key == key]
        if not found:
            raise KeyError(f"{type(self).__name__} has no check {key!r}")
        return found[0]

    def texts(self) -> dict[str, str]:
        """Text files by file name (``attnlib run`` writes each as given; none by default)."""
        return {}

    def card(self) -> ExperimentResult:
        """The part of the result the scorecard reads (by default all of it)."""
        return self

    def measures(self) -> dict[str, Any]:
        """The experiment's own flat metrics (see :meth:`metrics`)."""
        return {}

    def metrics(self) -> dict[str, Any]:
        """Flat metrics for metrics.json: :meth:`measures`, then ``seeds`` and ``attnlib_version``."""
        return {**self.measures(), "seeds": list(self.seeds), "attnlib_version": __version__}

    def config_hashes(self) -> dict[str, str]:
        """Run name -> config hash (by default of ``self.runs`` with the data config)."""
        return run_config_hashes(self.runs, self.config.data)  # type: ignore[attr-defined]

    def provenance(self) -> dict:
        """Config hash of every run, the seeds and the environment (:func:`attnlib.provenance.provenance`)."""
        return provenance(self.config_hashes(), self.seeds)


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


@dataclass(frozen=True)
class Option:
    """A command-line option of one experiment: ``attnlib run NAME --flag VALUE`` passes ``dest=VALUE``
    (``dest``: the flag without dashes, ``-`` as ``_``) to the experiment's ``run``; a ``switch`` takes no
    value (True when given). Another experiment's ``attnlib run`` refuses it."""

    flag: str
    help: str
    type: Callable[[str], Any] | None = None
    switch: bool = False

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def default(self) -> Any:
        return False if self.switch else None

    def add_to(self, parser: argparse.ArgumentParser, users: Sequence[str]) -> None:
        """Add the option to ``attnlib run``'s parser; its help names the experiments that use it."""
        text = f"{', '.join(users)} only: {self.help}"
        if self.switch:
            parser.add_argument(self.flag, action="store_true", help=text)
        else:
            parser.add_argument(self.flag, type=self.type, default=None, help=text)


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: everything the command line, the scorecard, the tests and the book need
    to know about it, read from its module by :meth:`from_module` (the module's names in brackets).

    ``run`` ([``run``]) is the one way to call it: ``run(config=None, seeds=None, quiet=True, **options)``
    returns an :class:`ExperimentResult` whose tables, figures, checks (``checks.csv`` and the scorecard's
    rows), metrics and provenance ``attnlib run NAME`` writes.
    """

    name: str
    """[``NAME``] ``attnlib run NAME``."""
    summary: str
    """[``SUMMARY``] one line for ``attnlib list``."""
    run: Callable[..., Any]
    preset: Callable[[], RunConfig] | None = None
    """[``PRESET``] the config ``run`` starts from, which ``--config FILE`` changes; None: no config file."""
    seeds: tuple[int, ...] = ()
    """[``DEFAULT_SEEDS``] the seeds ``run`` uses when given none; empty: it takes no seeds (``--seeds`` refused)."""
    max_seeds: int = 0
    """[``MAX_SEEDS``] the most seeds ``attnlib run NAME --seeds`` accepts."""
    sets_itself: Mapping[str, str] = field(default_factory=dict)
    """[``SETS_ITSELF``] config field (``section.name``) -> why ``run`` sets it itself: a config file naming
    one is refused, as its value would be ignored."""
    options: tuple[Option, ...] = ()
    """[``OPTIONS``] its own command-line options (passed to ``run`` by their ``dest``)."""
    check_options: Callable[..., None] | None = None
    """[``check_options``] called with the options' values before anything runs; a ValueError refuses them."""
    claims: Mapping[str, int] = field(default_factory=dict)
    """[``CLAIMS``] claim id (the ``id`` of its checks) -> its place in the scorecard; empty: not scored."""
    card_options: Mapping[str, Any] = field(default_factory=dict)
    """[``CARD_OPTIONS``] what the scorecard passes to ``run`` besides the seeds."""
    beyond: bool = False
    """[``BEYOND_THE_PAPER``] its scored rows test the paper's claims further, where the paper did not (other
    data or settings): the scorecard lists them, but they do not count towards the reproduction's verdicts."""

    @classmethod
    def from_module(cls, module: Any) -> Experiment:
        """The entry a module declares: ``NAME``, ``SUMMARY`` and ``run`` always; ``PRESET``,
        ``DEFAULT_SEEDS``, ``MAX_SEEDS``, ``SETS_ITSELF``, ``OPTIONS``, ``check_options``, ``CLAIMS``,
        ``CARD_OPTIONS`` and ``BEYOND_THE_PAPER`` where they apply (default: none)."""
        def get(name: str, default: Any = None) -> Any:
            return getattr(module, name, default)

        seeds = tuple(int(s) for s in get("DEFAULT_SEEDS", ()))
        if seeds and not get("MAX_SEEDS"):
            raise ValueError(f"experiment {module.NAME!r} takes seeds but declares no MAX_SEEDS")
        if not all(isinstance(place, int) for place in get("CLAIMS", {}).values()):
            raise ValueError(f"experiment {module.NAME!r}: CLAIMS maps each claim id to its place in the scorecard (an int)")
        return cls(name=module.NAME, summary=module.SUMMARY, run=module.run, preset=get("PRESET"), seeds=seeds,
                   max_seeds=int(get("MAX_SEEDS", 0)), sets_itself=MappingProxyType(dict(get("SETS_ITSELF", {}))),
                   options=tuple(get("OPTIONS", ())), check_options=get("check_options"),
                   claims=MappingProxyType(dict(get("CLAIMS", {}))),
                   card_options=MappingProxyType(dict(get("CARD_OPTIONS", {}))),
                   beyond=bool(get("BEYOND_THE_PAPER", False)))

    @property
    def scored(self) -> bool:
        """Whether the scorecard reads its checks."""
        return bool(self.claims)


def train_grid(settings: Mapping[Hashable, tuple[RunConfig, Sequence[Dataset]]], seeds: Sequence[int],
               trace_words: Sequence[int] | np.ndarray, quiet: bool = True, stack: bool = False) -> dict[Hashable, TrainResult]:
    """Train every setting (key -> config and one dataset per seed) for ``seeds`` through the cache.

    Settings that are the same training (the same call of :func:`attnlib.cache.cached_train`: equal
    configs, data of equal content) train once and share the result. Every other setting is a call of
    its own, so one that another study or chapter trains too (the same call) is read from the cache.
    With ``stack``, settings with the same model and training config whose datasets have the same
    vocabulary and classes train as one stacked call of :func:`attnlib.train.train` instead (the batch
    entries are independent, so each entry is what its own call gives), then are split per
    setting. Stacking is off by default because it does not pay on a CPU: an epoch's cost grows in
    proportion to the batch's entries (synthetic preset, one thread: an Attn-FC epoch about 0.3 ms plus
    0.5 ms per entry, an Attn-TC epoch about 0.7 ms per entry), a stack of 15 entries trains no faster
    than three calls of 5 (Attn-TC: slower), and a stacked call's cache entry serves only that stack.
    """
    seeds = [int(s) for s in seeds]
    calls: dict[Hashable, str] = {}  # setting -> the cache key of its own call
    for key, (config, datasets) in settings.items():
        if len(datasets) != len(seeds):
            raise ValueError(f"train_grid: setting {key!r} has {len(datasets)} datasets for {len(seeds)} seeds")
        calls[key] = cache_key(config.model, config.train, datasets, seeds, trace_words)
    same: dict[str, Hashable] = {}  # cache key -> the first setting that makes that call
    for key, call in calls.items():
        same.setdefault(call, key)
    groups: dict[tuple, list[Hashable]] = {}
    for key in same.values():
        config, datasets = settings[key]
        shape = (config.model, config.train, datasets[0].n_classes, len(datasets[0].vocab))
        groups.setdefault(shape if stack else (key,), []).append(key)
    out: dict[Hashable, TrainResult] = {}
    for keys in groups.values():
        config = settings[keys[0]][0]
        datasets = [d for key in keys for d in settings[key][1]]
        run = cached_train(config.model, config.train, datasets, seeds * len(keys), trace_words=trace_words,
                           quiet=quiet)
        for i, key in enumerate(keys):
            out[key] = run if len(keys) == 1 else select_entries(run, slice(i * len(seeds), (i + 1) * len(seeds)))
    return {key: out[same[calls[key]]] for key in settings}


def select_entries(run: TrainResult, part: slice) -> TrainResult:
    """The batch entries ``part`` of a run, as a run of their own."""
    def pick(a: np.ndarray | None, axis: int) -> np.ndarray | None:
        return None if a is None else a[part] if axis == 0 else a[:, part]

    per_epoch = {name: pick(getattr(run, name), 1) for name in ("loss", "train_accuracy", "test_loss",
                                                                "test_accuracy", "traced_scores", "traced_norms",
                                                                "dev_loss")}
    per_entry = {name: pick(getattr(run, name), 0) for name in ("final_scores", "final_norms", "query_norm",
                                                                "final_test_accuracy", "stopped_epoch", "best_epoch")}
    return TrainResult(model=run.model, train_config=run.train_config, seeds=run.seeds[part],
                       record_epochs=run.record_epochs, traced_words=run.traced_words, **per_epoch, **per_entry)
