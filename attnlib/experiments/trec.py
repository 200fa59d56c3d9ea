"""Beyond the paper: its two claims tested on TREC question classification (Li & Roth 2002), where the cue
words ("who", "where", "how many") are known in advance.

Attn-FC, Attn-TC and Attn-TL train at the SST settings (:func:`attnlib.config.trec_preset`) for
:data:`TREC_SEEDS`, each head's seeds in one batched run reduced to an
:class:`~attnlib.experiments.sst.SSTRun` of kind ``TREC`` (:func:`attnlib.experiments.sst.training.train_setting`).
Every head is served from its stored run (``results/trec``, the SST store's format and checks: manifest sha256,
setting and config hash, then the content checks of :func:`attnlib.experiments.sst.verification.verify_run`)
when its config and seeds match, and trained otherwise; a slow head (:data:`SLOW_HEADS`) without a matching
stored run is skipped unless asked for.
The analyses are in :mod:`attnlib.experiments.trec_analysis`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attnlib import paper
from attnlib.config import HEADS, RunConfig, trec_preset
from attnlib.data.corpus import Dataset
from attnlib.data.trec import CLASSES
from attnlib.experiments import trec_analysis as analysis
from attnlib.experiments.base import Check, ExperimentResult, Option, checks_table
from attnlib.experiments.sst.runs import SSTRun
from attnlib.experiments.sst.serving import load_or_train
from attnlib.experiments.sst.storage import checkout_store_dir, save_run, stored_seeds
from attnlib.experiments.sst.training import sst_dataset, train_setting
from attnlib.experiments.sst.verification import require_verified, verify_run
from attnlib.experiments.trec_analysis import EARLY_EPOCH, FIRST_EPOCH
from attnlib.formatting import mean_spread
from attnlib.provenance import provenance

NAME = "trec"
SUMMARY = "Beyond the paper: Attn-FC / TC / TL on TREC question types; attention shift and score-norm relation"
PRESET = None
"""No config file: each head's setting is :func:`attnlib.config.trec_preset`."""

KIND, VARIANT = "TREC", "default"
TREC_SEEDS = (0, 1, 2)
"""Seeds of the TREC runs (three, as for SST)."""
DEFAULT_SEEDS = TREC_SEEDS
MAX_SEEDS = 10
"""``--seeds`` at most, as for SST: each seed is one more model in the batch; seeds without a stored run of a
slow head train it only with ``--train-slow``."""
OPTIONS = (
    Option("--retrain", "retrain the selected settings even where a stored run exists (for instance one refused "
                        "by its checks); slow settings only with --only", switch=True),
    Option("--train-slow", "train Attn-TC and Attn-TL where no stored run matches (minutes each), instead of "
                           "skipping them", switch=True),
)
CLAIMS = {"X1": 15, "X2": 16, "X3": 17, "X4": 18}
"""Claim id -> place in the scorecard, after the paper's (1-14): the TREC rows, beyond the paper."""
BEYOND_THE_PAPER = True
"""The paper does not use TREC: these rows test its claims further and stay out of the reproduction's counts."""
TREC_HEADS = ("FC", "TC", "TL")
SLOW_HEADS = frozenset({"TC", "TL"})
"""Heads skipped, not trained, when no stored run matches (unless asked for). Measured for three seeds on one
CPU thread: Attn-TC 286 CPU-s (best epochs near 16,000), Attn-TL 113 s, Attn-FC 47 s."""
STORED_HEADS = frozenset(TREC_HEADS)
"""Heads served from ``results/trec`` when the stored run matches. Attn-FC is stored too although it trains
in under a minute: float32 training with early stopping may stop a few epochs apart on another CPU, which
moves its accuracies in the last digit shown, and the stored scorecard (:mod:`attnlib.scorecard`), checked
cell by cell on whatever machine runs the tests, must read the same runs everywhere."""
STORE_ENV_VAR = "ATTNLIB_TREC_STORE_DIR"
"""Environment variable naming another folder of stored TREC runs."""
STAGES = {"first step": FIRST_EPOCH, f"epoch {EARLY_EPOCH}": EARLY_EPOCH, "best epoch": -1}
"""The stages at which every question's most-attended word is found (-1: the restored best epoch)."""
CURVE_WORDS = ("how", "many", "what", "the", "who", "where")
"""Words whose score and |q||v| curves the chapter draws."""

PURITY_GAIN = 0.1
"""Attention shift: the mean purity of the questions' most-attended words rises by at least 0.1 from the first
step to the best epoch (purity runs from 0, words spread evenly over the six classes, to 1)."""
SCORE_NORM_GAP = 0.25
"""Score-norm relation on rising words: median relative gap to the identity at most 0.25, the target used for
SST (the paper's assumptions hold only roughly on real text)."""
ACCURACY_MARGIN = 0.0
"""Accuracy: an attention head's mean test accuracy is at least the wh-word lookup's (plus this margin, in
points): the least a model of the question's words should do."""


def store_folder() -> Path:
    """Where stored TREC runs are read from: ``$ATTNLIB_TREC_STORE_DIR``, else ``results/trec`` of the checkout."""
    env = os.environ.get(STORE_ENV_VAR)
    return Path(env).expanduser() if env else checkout_store_dir().parent / "trec"


def trec_dataset(config: RunConfig | None = None) -> Dataset:
    """The dataset the TREC runs train on (:func:`attnlib.experiments.sst.training.sst_dataset` of the preset)."""
    return sst_dataset(config or trec_preset())


def load_head(head: str, seeds: Sequence[int] = TREC_SEEDS, retrain: bool = False, quiet: bool = True,
              dataset: Dataset | None = None) -> SSTRun:
    """One head's run: a slow head's stored run when it matches, after every check of
    :func:`~attnlib.experiments.sst.verification.verify_run` (the replay of the first epochs included), else trained."""
    folder = store_folder()
    use_store = head in STORED_HEADS and not retrain and folder.is_dir()
    run = load_or_train(KIND, head, VARIANT, seeds, folder=folder if use_store else None, quiet=quiet,
                        use_store=use_store)
    if run.source == "stored":
        run.provenance["checks"] = require_verified(verify_run(run, dataset or trec_dataset(run.config)))["checks"]
    return run


def store_runs(heads: Sequence[str] = TREC_HEADS, seeds: Sequence[int] = TREC_SEEDS,
               folder: str | Path | None = None, quiet: bool = True) -> list[Path]:
    """Train ``heads`` and store each run in ``folder`` (default :func:`store_folder`) with the SST store's
    writer (npz, JSON sidecar, manifest sha256; :func:`attnlib.experiments.sst.storage.save_run`)."""
    folder = Path(folder) if folder is not None else store_folder()
    dataset = trec_dataset()
    paths = []
    for head in heads:
        run = train_setting(KIND, head, VARIANT, tuple(seeds), quiet=quiet, config=trec_preset(head), dataset=dataset)
        paths.append(save_run(run, folder))
    return paths


@dataclass
class TRECResult(ExperimentResult):
    """The three heads' runs on TREC, the baselines and the analyses."""

    runs: dict[str, SSTRun] = field(default_factory=dict)
    dataset: Dataset | None = None
    baselines: pd.DataFrame = field(default_factory=pd.DataFrame)
    skipped: list[str] = field(default_factory=list)
    """Slow heads that had no matching stored run and were not trained."""

    # ---- the analyses, each once

    def __post_init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def per_seed(self) -> pd.DataFrame:
        """Per head and seed: test accuracy (%) at the best epoch, best and stopping epoch, stored or trained."""
        rows = []
        for run in self.runs.values():
            for r in run.per_seed().itertuples():
                rows.append({"model": r.model, "seed": r.seed, "test accuracy (%)": 100 * r.test_accuracy,
                             "best epoch": r.best_epoch, "stopped (epoch)": r.stopped_epoch, "source": r.source})
        return pd.DataFrame(rows)

    def accuracy(self) -> pd.DataFrame:
        """Test accuracy (%) of the heads (mean and spread over seeds), the baselines and the published models."""
        rows = []
        for run in self.runs.values():
            acc = 100 * np.asarray(run.final_test_accuracy)
            rows.append({"model": run.name, "kind": "attention model (this book)", "test accuracy (%)": float(acc.mean()),
                         "over seeds": mean_spread(acc, 1), "source": f"{len(acc)} seeds, {run.source}"})
        for _, r in self.baselines.iterrows():
            rows.append({"model": r["model"], "kind": "baseline (this book)", "test accuracy (%)": r["test accuracy (%)"],
                         "over seeds": "deterministic", "source": "same tokens and split"})
        for (model, value), cite in zip(paper.TREC_PUBLISHED.items(), paper.TREC_PUBLISHED_SOURCE.values()):
            rows.append({"model": model, "kind": "published", "test accuracy (%)": value, "over seeds": "",
                         "source": cite})
        return pd.DataFrame(rows)

    def tops(self) -> pd.DataFrame:
        return self._once("tops", lambda: pd.concat(
            [analysis.stage_tops(run, self.dataset.train, self.dataset.vocab, STAGES, len(CLASSES))
             for run in self.runs.values()], ignore_index=True))

    def stages(self) -> pd.DataFrame:
        return self._once("stages", lambda: analysis.stage_summary(self.tops()))

    def per_class(self) -> pd.DataFrame:
        return self._once("per_class", lambda: analysis.top_words_per_class(self.tops(), CLASSES))

    def shift(self) -> pd.DataFrame:
        return self._once("shift", lambda: pd.concat([analysis.shift_over_training(r) for r in self.runs.values()],
                                                      ignore_index=True))

    def score_norm(self) -> pd.DataFrame:
        return self._once("score_norm", lambda: pd.concat(
            [analysis.score_norm_table(r, self.dataset.train, len(CLASSES)) for r in self.runs.values()],
            ignore_index=True))

    def score_norm_summary(self) -> pd.DataFrame:
        return analysis.score_norm_summary(self.score_norm())

    def purity_correlation(self) -> pd.DataFrame:
        return analysis.purity_direction_correlation(self.score_norm())

    def rise_fall(self) -> pd.DataFrame:
        return self._once("rise_fall", lambda: pd.concat(
            [analysis.rise_and_fall(r, self.dataset.train, len(CLASSES)) for r in self.runs.values()],
            ignore_index=True))

    def rise_fall_words(self, min_seeds: int = 2) -> pd.DataFrame:
        """Words that rise and then fall in at least ``min_seeds`` seeds of a head, with their mean peak and final score."""
        df = self.rise_fall()
        g = df.groupby(["model", "word"], sort=False)
        out = g.agg(seeds=("rises then falls", "sum"), occurrence=("occurrence", "first"), purity=("purity", "first"),
                    peak=("peak score", "mean"), peak_epoch=("peak epoch", "mean"),
                    final=("score at the best epoch", "mean")).reset_index()
        out = out[out.seeds >= min_seeds].sort_values(["model", "peak"], ascending=[True, False], kind="stable")
        return out.rename(columns={"seeds": "seeds where it rises then falls", "peak": "mean peak score",
                                   "peak_epoch": "mean peak epoch", "final": "mean score at the best epoch"}
                          ).reset_index(drop=True)

    def curves(self) -> pd.DataFrame:
        return pd.concat([analysis.word_curves(r, CURVE_WORDS) for r in self.runs.values()], ignore_index=True)

    # ---- the common surface

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"accuracy": self.accuracy(), "accuracy_per_seed": self.per_seed(), "baselines": self.baselines,
                "shift_stages": self.stages(), "shift_per_class": self.per_class(), "shift_curves": self.shift(),
                "score_norm": self.score_norm(), "score_norm_summary": self.score_norm_summary(),
                "purity_score_correlation": self.purity_correlation(), "rise_and_fall": self.rise_fall_words(),
                "word_curves": self.curves(), "checks": checks_table(self.checks())}

    def figures(self) -> dict:
        from attnlib.plots.trec import plot_rise_fall, plot_score_norm, plot_shift  # noqa: PLC0415 - pyplot and seaborn take seconds to import: only drawing needs them

        return {"trec_shift": partial(plot_shift, self), "trec_score_norm": partial(plot_score_norm, self),
                "trec_rise_fall": partial(plot_rise_fall, self)}

    def checks(self) -> list[Check]:
        return trec_checks(self)

    def measures(self) -> dict[str, Any]:
        out = {f"TREC.{run.name}.test_accuracy": float(np.mean(run.final_test_accuracy)) for run in self.runs.values()}
        out.update({f"TREC.{r['model']}.test_accuracy": r["test accuracy (%)"] / 100 for _, r in self.baselines.iterrows()})
        return out

    def provenance(self) -> dict:
        return provenance({run.key: run.config.config_hash() for run in self.runs.values()}, list(self.seeds))


def trec_checks(result: TRECResult) -> list[Check]:
    """The rows beyond the paper: accuracy against the wh-word lookup, the attention shift, the score-norm
    relation on rising words, and (reported) the falling and the rising-then-falling words."""
    rows = []
    lookup = result.baselines.set_index("model")["test accuracy (%)"].get("wh-word lookup", np.nan)
    for run in result.runs.values():
        acc = 100 * np.asarray(run.final_test_accuracy)
        rows.append(Check("X1", f"TREC {run.name}: test accuracy (%) against the wh-word lookup", "not in the paper",
                          mean_spread(acc, 1), f"every seed ≥ the lookup's {lookup:.1f} %",
                          int((acc >= lookup + ACCURACY_MARGIN).sum()), len(acc), len(acc), key=f"accuracy_{run.head}"))
    stages = result.stages()
    for run in result.runs.values():
        g = stages[stages.model == run.name].set_index(["seed", "stage"])["mean purity of the most-attended word"]
        gains = [g[(s, "best epoch")] - g[(s, "first step")] for s in run.seeds]
        rows.append(Check("X2", f"TREC {run.name}: attention moves to purer words", "predicted (F6 on SST)",
                          "purity gain per seed: " + ", ".join(f"{x:+.2f}" for x in gains),
                          f"mean purity of the most-attended words rises ≥ {PURITY_GAIN} from the first step "
                          "to the best epoch, every seed", int(sum(x >= PURITY_GAIN for x in gains)), len(gains),
                          len(gains), key=f"shift_{run.head}"))
    table = result.score_norm()
    for run in result.runs.values():
        rising = table[(table.model == run.name) & (table.direction == "rises")]
        medians = rising.groupby("seed").rel_gap.median()
        rows.append(Check("X3", f"TREC {run.name}: the identity on words whose score rises (median relative gap)",
                          "predicted (F5 on SST)", mean_spread(medians, 3), f"≤ {SCORE_NORM_GAP} in every seed",
                          int((medians <= SCORE_NORM_GAP).sum()), len(medians), len(medians), key=f"identity_{run.head}"))
        falling = table[(table.model == run.name) & (table.direction == "falls")]
        grew = 100 * float((falling.norm > falling.norm_at_start).mean()) if len(falling) else float("nan")
        rows.append(Check("X4", f"TREC {run.name}: words whose score falls", "outside the identity (no solution)",
                          f"{len(falling)} word-seed pairs; |q||v| grew for {grew:.0f} %", "reported", 0, 0, 0,
                          key=f"falling_{run.head}"))
    return rows


def run(config: RunConfig | None = None, seeds: Sequence[int] | None = None, quiet: bool = True,
        retrain: bool = False, heads: Sequence[str] = TREC_HEADS, train_slow: bool = False,
        **options: Any) -> TRECResult:
    """The three heads (slow ones served from storage when they match), the baselines and the analyses.

    A slow head (:data:`SLOW_HEADS`) without a matching stored run is skipped (and said so on stdout) unless
    ``train_slow`` or ``retrain``; ``retrain`` trains every head even when a stored run matches.

    ``config`` is not used: every head's setting is :func:`attnlib.config.trec_preset`.
    """
    if config is not None:
        raise ValueError("the trec experiment takes no config: each head's setting is attnlib.config.trec_preset")
    seeds = tuple(TREC_SEEDS if seeds is None else (int(s) for s in seeds))
    dataset = trec_dataset()
    skipped = [] if train_slow or retrain else [h for h in heads if h in SLOW_HEADS and not is_stored(h, seeds)]
    for head in skipped:
        print(f"TREC {HEADS[head]}: skipped: no stored run with seeds {', '.join(map(str, seeds))} in {store_folder()}, "
              f"and it is slow to train; train it with trec.run(train_slow=True) or store it with trec.store_runs()",
              flush=True)
    runs = {head: load_head(head, seeds, retrain=retrain, quiet=quiet, dataset=dataset)
            for head in heads if head not in skipped}
    baselines = pd.concat([analysis.linear_baselines(dataset), analysis.lookup_baseline(dataset)], ignore_index=True)
    return TRECResult(config=trec_preset(), seeds=list(seeds), runs=runs, dataset=dataset, baselines=baselines,
                      skipped=skipped)


def is_stored(head: str, seeds: Sequence[int] = TREC_SEEDS) -> bool:
    """Whether ``results/trec`` (:func:`store_folder`) has a run of ``head`` with the preset's config hash and
    every one of ``seeds`` (unchecked: serving it checks it)."""
    folder = store_folder()
    return folder.is_dir() and set(int(s) for s in seeds) <= set(stored_seeds(KIND, head, VARIANT, folder))


__all__ = ["NAME", "SUMMARY", "TREC_SEEDS", "TREC_HEADS", "SLOW_HEADS", "STORED_HEADS", "STAGES", "TRECResult", "run",
           "trec_checks", "is_stored", "store_folder", "store_runs", "trec_dataset", "load_head", "HEADS"]
