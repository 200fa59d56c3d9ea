"""Beyond the paper: four studies on the synthetic data that the paper does not make (spec §7).

1. :func:`suppression_study`: mutual suppression early in training (prediction P4): which topic words'
   scores and norms dip before they rise, how deep, for how long, for which heads and inits.
2. :func:`identity_sweeps` and :func:`breaking_cases`: the identity across m and the query scale
   (spec §7.2), and where it breaks when an assumption is violated on purpose.
3. :func:`capacity_study`: final topic scores and attention weights for Attn-FC, Attn-TC and Attn-TL
   with hidden widths 2 to 200.
4. :func:`growth_study`: how score, norm and loss evolve over long runs with the fixed classifier.

Every study trains all seeds (and, where the datasets have equal sizes, all settings) of one model
configuration in a single :func:`attnlib.train.train` call, and returns a small result object with
tidy DataFrames whose columns are listed in each method's docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from attnlib import __version__, theory
from attnlib.config import HEADS, RunConfig, synthetic_preset
from attnlib.data import Corpus, Dataset, generate_synthetic
from attnlib.model import init_params
from attnlib.cache import cached_train
from attnlib.train import TrainResult

BEYOND_SEEDS = (0, 1, 2)
LOSS_THRESHOLD = 0.1
DIP_TOLERANCE = 1e-12
"""A fall below the starting value counts as a dip when it exceeds this (float64 rounding is ~1e-16)."""


def _first_below(loss: np.ndarray, threshold: float = LOSS_THRESHOLD) -> float:
    below = np.flatnonzero(loss < threshold)
    return float(below[0]) if len(below) else float("nan")


def phi_inverse(value: np.ndarray | float, m: float) -> np.ndarray:
    """The score s with phi_m(s) = value (phi_m is strictly increasing), by bisection to float precision."""
    value = np.asarray(value, dtype=float)
    # phi_m(s) <= s for s <= 0 and phi_m(s) >= s for s >= 0, so the root is >= min(value, 0);
    # phi_m(s) >= s - 1/m and phi_m(s) >= (e^s - 1)/m bound it above.
    low = np.minimum(value, 0.0) - 1.0
    high = np.maximum(np.log1p(np.maximum(value, 0.0) * m) + 1.0, 1.0)
    for _ in range(200):
        middle = 0.5 * (low + high)
        above = theory.phi(middle, m) > value
        high, low = np.where(above, middle, high), np.where(above, low, middle)
    return 0.5 * (low + high)


def p4_score_dip_bound(initial_norm: np.ndarray | float, m: float, initial_score: np.ndarray | float = 0.0) -> np.ndarray:
    """P4: the deepest score dip the identity allows, s(0) - phi_m^{-1}(phi_m(s(0)) - (|q||v(0)|)^2 / 2).

    The norm cannot fall below 0, so 2 (phi_m(s) - phi_m(s(0))) >= -(|q||v(0)|)^2.
    """
    initial_score = np.asarray(initial_score, dtype=float)
    floor = theory.phi(initial_score, m) - np.asarray(initial_norm, dtype=float) ** 2 / 2
    return initial_score - phi_inverse(floor, m)


def _dip(path: np.ndarray, epochs: np.ndarray) -> tuple[float, float, float]:
    """Depth (start minus minimum, 0 if never below the start), epoch of the minimum, epoch of recovery.

    Recovery is the first recorded epoch after the minimum at which the path is back at its start
    value (NaN if it never is; NaN for both epochs when there is no dip).
    """
    start, lowest = path[0], int(np.argmin(path))
    depth = float(start - path[lowest])
    if depth <= DIP_TOLERANCE:
        return 0.0, float("nan"), float("nan")
    back = np.flatnonzero(path[lowest:] >= start)
    return depth, float(epochs[lowest]), float(epochs[lowest + back[0]]) if len(back) else float("nan")


def _traced_table(run: TrainResult, labels: dict, m: float | np.ndarray, seeds: Sequence | None = None) -> pd.DataFrame:
    """Per recorded epoch, seed index and traced word: score, |q||v|, the identity's general-init
    prediction from the word's own start, and the residual. ``m`` is a scalar or one value per seed."""
    seeds = run.seeds if seeds is None else seeds
    m_per_seed = np.broadcast_to(np.asarray(m, dtype=float), (len(seeds),))
    predicted = theory.sen_norm(run.traced_scores, m_per_seed[None, :, None], run.traced_scores[:1], run.traced_norms[:1])
    epochs, index, words = np.meshgrid(run.record_epochs, np.arange(len(seeds)), run.traced_words, indexing="ij")
    return pd.DataFrame({
        **labels, "seed": np.asarray(seeds)[index.ravel()], "m": m_per_seed[index.ravel()],
        "epoch": epochs.ravel(), "word": words.ravel(),
        "score": run.traced_scores.ravel(), "norm": run.traced_norms.ravel(),
        "theory": predicted.ravel(), "residual": (run.traced_norms - predicted).ravel(),
    })


# ----------------------------------------------------------------------------------------------
# 1. Mutual suppression
# ----------------------------------------------------------------------------------------------


@dataclass
class SuppressionResult:
    """Early training of every head at two embedding inits, every epoch recorded."""

    base: RunConfig
    seeds: list[int]
    runs: dict[tuple[str, float], TrainResult]
    """Keyed by (model name, embedding init std)."""
    datasets: list[Dataset] = field(repr=False)

    def curves(self) -> pd.DataFrame:
        """Columns: model, init_std, seed, m, epoch, word, score, norm, theory, residual (general-init identity)."""
        return pd.concat([_traced_table(run, {"model": model, "init_std": std}, self.base.data.m)
                          for (model, std), run in self.runs.items()], ignore_index=True)

    def dips(self) -> pd.DataFrame:
        """One row per model, init, seed and topic word.

        Columns: model, init_std, seed, word, initial_norm (|q||v(0)|), score_dip, score_dip_epoch,
        score_recovery_epoch, norm_dip, norm_dip_relative (to the initial norm), norm_dip_epoch,
        norm_recovery_epoch, p4_bound (the deepest score dip the identity allows), dip_over_bound,
        norm_dip_from_identity (the norm dip the identity predicts from the measured score dip),
        initial_margin and predicted_dip (linear heads only, else NaN / None: with u = U^T v_w(0), the
        margin u_y - mean_k u_k; at uniform attention and near-uniform predictions G_w has the sign of
        minus this margin, so P4 predicts a dip exactly when the margin is negative).
        """
        m = self.base.data.m
        rows = []
        for (model, std), run in self.runs.items():
            epochs = run.record_epochs
            margins = self._initial_margins(run)
            for k, seed in enumerate(run.seeds):
                for j, word in enumerate(run.traced_words):
                    score, norm = run.traced_scores[:, k, j], run.traced_norms[:, k, j]
                    s_depth, s_at, s_back = _dip(score, epochs)
                    n_depth, n_at, n_back = _dip(norm, epochs)
                    bound = float(p4_score_dip_bound(norm[0], m, score[0]))
                    lowest = theory.sen_norm(score[0] - s_depth, m, score[0], norm[0])
                    rows.append({
                        "model": model, "init_std": std, "seed": seed, "word": int(word), "initial_norm": norm[0],
                        "score_dip": s_depth, "score_dip_epoch": s_at, "score_recovery_epoch": s_back,
                        "norm_dip": n_depth, "norm_dip_relative": n_depth / norm[0], "norm_dip_epoch": n_at,
                        "norm_recovery_epoch": n_back, "p4_bound": bound, "dip_over_bound": s_depth / bound,
                        "norm_dip_from_identity": float(norm[0] - lowest),
                        "initial_margin": margins[k, j],
                        "predicted_dip": None if np.isnan(margins[k, j]) else bool(margins[k, j] < 0),
                    })
        return pd.DataFrame(rows)

    def _initial_margins(self, run: TrainResult) -> np.ndarray:
        """(S, W) margins u_y - mean_k u_k of the traced words at initialisation; NaN for Attn-TL."""
        out = np.full((len(run.seeds), len(run.traced_words)), np.nan)
        if run.model.head not in ("FC", "TC"):
            return out
        for k, seed in enumerate(run.seeds):
            data = self.datasets[k]
            params = init_params(run.model, len(data.vocab), data.n_classes, [seed], torch.float64, torch.device("cpu"))
            u = (params.embeddings[0] @ params.head["U"][0]).numpy()
            for j, word in enumerate(run.traced_words):
                topic = data.topic_of_word[int(word)]
                out[k, j] = u[word, topic] - u[word].mean()
        return out

    def summary(self) -> pd.DataFrame:
        """One row per model and init (over seeds and topic words).

        Columns: model, init_std, words, score_dips (how many topic words' scores dip), norm_dips,
        max_score_dip, max_norm_dip_relative, max_dip_over_bound, latest_dip_epoch (epoch of the
        latest score minimum), latest_recovery_epoch, max_epoch_gap (largest |epoch of the score
        minimum - epoch of the norm minimum| where both dip), max_abs_residual (general-init identity),
        predicted_right (how many words' dip / no dip the initial margin predicts correctly; NaN for TL).
        """
        dips = self.dips()
        curves = self.curves()
        residual = curves.assign(r=curves.residual.abs()).groupby(["model", "init_std"], sort=False)["r"].max()
        rows = []
        for (model, std), part in dips.groupby(["model", "init_std"], sort=False):
            both = part[(part.score_dip > 0) & (part.norm_dip > 0)]
            rows.append({
                "model": model, "init_std": std, "words": len(part),
                "score_dips": int((part.score_dip > 0).sum()), "norm_dips": int((part.norm_dip > 0).sum()),
                "max_score_dip": part.score_dip.max(), "max_norm_dip_relative": part.norm_dip_relative.max(),
                "max_dip_over_bound": part.dip_over_bound.max(),
                "latest_dip_epoch": part.score_dip_epoch.max(), "latest_recovery_epoch": part.score_recovery_epoch.max(),
                "max_epoch_gap": (both.score_dip_epoch - both.norm_dip_epoch).abs().max() if len(both) else float("nan"),
                "max_abs_residual": residual[(model, std)],
                "predicted_right": float((part.predicted_dip == (part.score_dip > 0)).sum())
                if part.predicted_dip.notna().all() else float("nan"),
            })
        return pd.DataFrame(rows)


def suppression_study(seeds: Sequence[int] = BEYOND_SEEDS, heads: Sequence[str] = tuple(HEADS),
                      init_stds: Sequence[float] = (1e-3, 0.1), epochs: int = 2000,
                      base: RunConfig | None = None, quiet: bool = True) -> SuppressionResult:
    """Train every head at each embedding init std for ``epochs`` epochs, recording every epoch."""
    base = (base or synthetic_preset()).replace(train={"epochs": epochs, "record_every": 1})
    seeds = [int(s) for s in seeds]
    datasets = [generate_synthetic(base.data, seed) for seed in seeds]
    runs = {}
    for std in init_stds:
        for head in heads:
            config = base.replace(model={"head": head, "embed_init_std": float(std)})
            runs[(config.model.name, float(std))] = cached_train(config.model, config.train, datasets, seeds,
                                                                 trace_words=datasets[0].topic_words, quiet=quiet)
    return SuppressionResult(base, seeds, runs, datasets)


# ----------------------------------------------------------------------------------------------
# 2. Sensitivity of the identity
# ----------------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """The identity across m and the query std (spec §7.2)."""

    base: RunConfig
    seeds: list[int]
    runs: dict[tuple[str, str, float], tuple[TrainResult, list[int], list[float]]]
    """(sweep, model, value) -> (run, the seed of each of its batch entries, the m of each entry)."""

    def curves(self) -> pd.DataFrame:
        """Columns: sweep ('m' or 'query_std'), value, model, seed, m, epoch, word, score, norm (|q||v|),
        raw_norm (|v|), query_norm, theory (general-init identity with the run's m), residual,
        residual_m20 (against the m = 20 curve instead)."""
        frames = []
        for (sweep, model, value), (run, seeds, ms) in self.runs.items():
            table = _traced_table(run, {"sweep": sweep, "value": value, "model": model}, ms, seeds)
            query_norm = np.broadcast_to(run.query_norm[None, :, None], run.traced_scores.shape).ravel()
            table["query_norm"] = query_norm
            table["raw_norm"] = table["norm"] / query_norm
            twenty = theory.sen_norm(run.traced_scores, 20.0, run.traced_scores[:1], run.traced_norms[:1])
            table["residual_m20"] = (run.traced_norms - twenty).ravel()
            frames.append(table)
        return pd.concat(frames, ignore_index=True)

    def summary(self) -> pd.DataFrame:
        """One row per sweep, value, model and seed.

        Columns: sweep, value, model, seed, m, query_norm, max_abs_residual, max_abs_residual_m20,
        final_topic_score_mean, final_topic_norm_mean, final_train_loss, epochs_to_train_loss_0.1.
        """
        curves = self.curves()
        worst = curves.assign(a=curves.residual.abs(), b=curves.residual_m20.abs()).groupby(
            ["sweep", "value", "model", "seed"], sort=False)[["a", "b"]].max()
        rows = []
        for (sweep, model, value), (run, seeds, ms) in self.runs.items():
            for k, seed in enumerate(seeds):
                rows.append({
                    "sweep": sweep, "value": value, "model": model, "seed": seed, "m": ms[k],
                    "query_norm": run.query_norm[k],
                    "max_abs_residual": worst.loc[(sweep, value, model, seed), "a"],
                    "max_abs_residual_m20": worst.loc[(sweep, value, model, seed), "b"],
                    "final_topic_score_mean": run.traced_scores[-1, k].mean(),
                    "final_topic_norm_mean": run.traced_norms[-1, k].mean(),
                    "final_train_loss": run.loss[-1, k],
                    "epochs_to_train_loss_0.1": _first_below(run.loss[:, k]),
                })
        return pd.DataFrame(rows)


def identity_sweeps(seeds: Sequence[int] = BEYOND_SEEDS, heads: Sequence[str] = ("FC", "TC"),
                    ms: Sequence[int] = (5, 10, 20, 40),
                    query_stds: Sequence[float] = (0.1, 0.3, math.sqrt(0.3), 1.0),
                    epochs: int = 3000, record_every: int = 10, base: RunConfig | None = None,
                    quiet: bool = True) -> SweepResult:
    """Sweep m (data) and the query std (model), one at a time, from ``base`` (the synthetic preset).

    All m values of one head train in one call (equal sentence counts and vocabulary; the seeds
    repeat with different datasets); each query std is one call per head.
    """
    base = (base or synthetic_preset()).replace(train={"epochs": epochs, "record_every": record_every})
    seeds = [int(s) for s in seeds]
    runs: dict[tuple[str, str, float], tuple[TrainResult, list[int], list[float]]] = {}
    m_datasets = [generate_synthetic(base.replace(data={"m": int(m)}).data, seed) for m in ms for seed in seeds]
    m_seeds = [seed for _ in ms for seed in seeds]
    m_values = [float(m) for m in ms for _ in seeds]
    datasets = [generate_synthetic(base.data, seed) for seed in seeds]
    for head in heads:
        config = base.replace(model={"head": head})
        run = cached_train(config.model, config.train, m_datasets, m_seeds, trace_words=datasets[0].topic_words,
                           quiet=quiet)
        for i, m in enumerate(ms):
            part = slice(i * len(seeds), (i + 1) * len(seeds))
            runs[("m", config.model.name, float(m))] = (_select(run, part), seeds, m_values[part])
        for std in query_stds:
            config = base.replace(model={"head": head, "query_std": float(std)})
            run = cached_train(config.model, config.train, datasets, seeds, trace_words=datasets[0].topic_words,
                               quiet=quiet)
            runs[("query_std", config.model.name, float(std))] = (run, seeds, [float(base.data.m)] * len(seeds))
    return SweepResult(base, seeds, runs)


def _select(run: TrainResult, part: slice) -> TrainResult:
    """The batch entries ``part`` of a run, as a run of their own."""
    pick = lambda a: None if a is None else a[part] if a.ndim == 1 else a[:, part]  # noqa: E731
    per_seed_first = lambda a: a[part]  # noqa: E731
    return TrainResult(
        model=run.model, train_config=run.train_config, seeds=run.seeds[part], loss=pick(run.loss),
        train_accuracy=pick(run.train_accuracy), record_epochs=run.record_epochs, test_loss=pick(run.test_loss),
        test_accuracy=pick(run.test_accuracy), traced_words=run.traced_words,
        traced_scores=run.traced_scores[:, part], traced_norms=run.traced_norms[:, part],
        final_scores=per_seed_first(run.final_scores), final_norms=per_seed_first(run.final_norms),
        query_norm=per_seed_first(run.query_norm), final_test_accuracy=per_seed_first(run.final_test_accuracy),
        stopped_epoch=per_seed_first(run.stopped_epoch), best_epoch=per_seed_first(run.best_epoch),
    )


BREAKING_CASES = {
    "baseline": ("none", "the synthetic preset (m = 20, embedding std 1e-3, lr 0.1)"),
    "large learning rate": ("gradient flow (the identity is exact for infinitesimal steps)",
                            "lr 1.0 for a tenth of the epochs (same lr x epochs)"),
    "embedding init std 0.1": ("A2 (non-topic words start with norms as large as the topic word's)",
                               "embeddings N(0, 0.1^2), the ablation's init; general-init form of the identity"),
    "variable m": ("A3 (sentence length varies, m from 10 to 30)",
                   "m_range = (10, 30), compared with the m = 20 curve (the mean)"),
    "shared topic word": ("A4 only (the identity does not need it)",
                          "topic 1's first word replaced by topic 0's first word in every sentence"),
    "trainable query": ("A1 (q moves, adding a term kappa^T dq/dt to ds/dt)",
                        "train_query=True; |q(t)||v| against the curve"),
}
"""Case -> (assumption it violates, how it is built)."""


def share_topic_word(dataset: Dataset, source: int = 2, target: int = 0) -> Dataset:
    """A copy of a synthetic dataset in which topic word ``source`` is replaced by ``target`` everywhere.

    With the defaults, topic 1's first word (id 2) becomes topic 0's first word (id 0): word 0 then
    occurs in sentences of topic 0 and of topic 1 (violating A4 only; each sentence still has one topic
    word and m non-topic words), and word 2 no longer occurs. The labels do not change.
    """
    def replace(corpus: Corpus) -> Corpus:
        sentences = [np.where(s == source, target, s) for s in corpus.sentences]
        return Corpus(sentences, corpus.labels.copy(), corpus.vocab_size)

    topics = {w: t for w, t in dataset.topic_of_word.items() if w != source}
    return Dataset(f"{dataset.name}-shared", dataset.vocab, dataset.n_classes,
                   {name: replace(corpus) for name, corpus in dataset.splits.items()}, topics)


@dataclass
class BreakingResult:
    """The identity when one assumption at a time is violated on purpose."""

    base: RunConfig
    seeds: list[int]
    runs: dict[tuple[str, str], TrainResult]
    """(case, model) -> run."""
    words: dict[str, np.ndarray]
    """case -> the topic words that occur in its training data (the residual is taken over these)."""

    def curves(self) -> pd.DataFrame:
        """Columns: case, model, seed, m, epoch, word, score, norm, theory (general-init identity with
        m = 20), residual."""
        frames = []
        for (case, model), run in self.runs.items():
            table = _traced_table(run, {"case": case, "model": model}, self.base.data.m)
            frames.append(table[table.word.isin(self.words[case])])
        return pd.concat(frames, ignore_index=True)

    def summary(self) -> pd.DataFrame:
        """One row per case, model and seed.

        Columns: case, violates, model, seed, max_abs_residual, final_abs_residual (at the last
        epoch), final_relative_residual (final |residual| / final |q||v|), max_abs_residual_default_form
        (against sqrt(2 phi_20(s)), i.e. ignoring the initial norm), final_topic_score_mean,
        final_train_loss, query_norm_change (|q(T)| / |q(0)| - 1).
        """
        curves = self.curves()
        curves["default"] = curves.norm - theory.sen_norm(curves.score.to_numpy(), self.base.data.m)
        rows = []
        for (case, model, seed), part in curves.groupby(["case", "model", "seed"], sort=False):
            run = self.runs[(case, model)]
            k = run.seeds.index(seed)
            last = part[part.epoch == part.epoch.max()]
            initial_query = float(init_params(run.model, run.final_scores.shape[1],
                                              self.base.data.n_topics, [seed], torch.float64,
                                              torch.device("cpu")).query_norm()[0])
            rows.append({
                "case": case, "violates": BREAKING_CASES[case][0], "model": model, "seed": seed,
                "max_abs_residual": part.residual.abs().max(), "final_abs_residual": last.residual.abs().max(),
                "final_relative_residual": (last.residual.abs() / last.norm).max(),
                "max_abs_residual_default_form": part["default"].abs().max(),
                "final_topic_score_mean": last.score.mean(), "final_train_loss": run.loss[-1, k],
                "query_norm_change": run.query_norm[k] / initial_query - 1.0,
            })
        return pd.DataFrame(rows)


def breaking_cases(seeds: Sequence[int] = BEYOND_SEEDS, heads: Sequence[str] = ("FC", "TC"),
                   cases: Sequence[str] = tuple(BREAKING_CASES), epochs: int = 3000, large_lr: float = 1.0,
                   record_every: int = 10, base: RunConfig | None = None, quiet: bool = True) -> BreakingResult:
    """Train each case of :data:`BREAKING_CASES` for every head; all seeds of a case in one call."""
    base = (base or synthetic_preset()).replace(train={"epochs": epochs, "record_every": record_every})
    seeds = [int(s) for s in seeds]
    plain = [generate_synthetic(base.data, seed) for seed in seeds]
    runs, words = {}, {}
    for case in cases:
        config, datasets = base, plain
        if case == "large learning rate":
            ratio = base.train.lr / large_lr
            config = base.replace(train={"lr": large_lr, "epochs": max(1, round(epochs * ratio)),
                                         "record_every": max(1, round(record_every * ratio))})
        elif case == "embedding init std 0.1":
            config = base.replace(model={"embed_init_std": 0.1})
        elif case == "variable m":
            datasets = [generate_synthetic(base.replace(data={"m_range": (10, 30)}).data, seed) for seed in seeds]
        elif case == "shared topic word":
            datasets = [share_topic_word(d) for d in plain]
        elif case == "trainable query":
            config = base.replace(model={"train_query": True})
        elif case != "baseline":
            raise ValueError(f"breaking_cases: unknown case {case!r}; choose from {list(BREAKING_CASES)}")
        words[case] = datasets[0].topic_words
        for head in heads:
            run_config = config.replace(model={"head": head})
            runs[(case, run_config.model.name)] = cached_train(run_config.model, run_config.train, datasets, seeds,
                                                               trace_words=plain[0].topic_words, quiet=quiet)
    return BreakingResult(base, seeds, runs, words)


# ----------------------------------------------------------------------------------------------
# 3. Classifier capacity
# ----------------------------------------------------------------------------------------------


def topic_attention(scores: np.ndarray, dataset: Dataset, split: str = "train") -> np.ndarray:
    """Each sentence's total attention weight on its topic words, from every word's score (V,)."""
    counts = dataset.splits[split].counts
    weights = np.exp(scores - scores.max())
    topic = dataset.topic_words
    return (counts[:, topic] @ weights[topic]) / (counts @ weights)


@dataclass
class CapacityResult:
    """Attn-FC, Attn-TC and Attn-TL with several hidden widths, at the synthetic preset."""

    base: RunConfig
    seeds: list[int]
    runs: dict[str, TrainResult]
    """Keyed by classifier label, e.g. ``Attn-FC``, ``Attn-TL (h=50)``."""
    datasets: list[Dataset] = field(repr=False)

    def summary(self) -> pd.DataFrame:
        """One row per classifier and seed.

        Columns: classifier, head, hidden_units (NaN for the linear heads), trainable_head_parameters,
        seed, query_norm, final_train_loss, test_accuracy, epochs_to_train_loss_0.1, topic_score_mean,
        topic_score_min, topic_score_max, topic_norm_mean, attention_mean (mean over training sentences
        of the weight on the sentence's topic word, from the final scores), attention_min,
        sen_max_abs_residual (general-init identity over the recorded epochs and topic words).
        """
        rows = []
        m = self.base.data.m
        for label, run in self.runs.items():
            predicted = theory.sen_norm(run.traced_scores, m, run.traced_scores[:1], run.traced_norms[:1])
            residual = np.abs(run.traced_norms - predicted).max(axis=(0, 2))
            head, width = run.model.head, run.model.hidden_units
            k_classes, d = self.datasets[0].n_classes, run.model.d_embed
            n_head = {"FC": 0, "TC": d * k_classes}.get(head, d * width + width + width * k_classes + k_classes)
            for k, seed in enumerate(run.seeds):
                topic = self.datasets[k].topic_words
                attention = topic_attention(run.final_scores[k], self.datasets[k])
                rows.append({
                    "classifier": label, "head": head, "hidden_units": float(width) if head == "TL" else float("nan"),
                    "trainable_head_parameters": n_head, "seed": seed, "query_norm": run.query_norm[k],
                    "final_train_loss": run.loss[-1, k], "test_accuracy": run.final_test_accuracy[k],
                    "epochs_to_train_loss_0.1": _first_below(run.loss[:, k]),
                    "topic_score_mean": run.final_scores[k, topic].mean(),
                    "topic_score_min": run.final_scores[k, topic].min(),
                    "topic_score_max": run.final_scores[k, topic].max(),
                    "topic_norm_mean": run.final_norms[k, topic].mean(),
                    "attention_mean": attention.mean(), "attention_min": attention.min(),
                    "sen_max_abs_residual": residual[k],
                })
        return pd.DataFrame(rows)

    def curves(self) -> pd.DataFrame:
        """Columns: classifier, seed, epoch, score (mean over topic words), norm (mean), loss."""
        frames = []
        for label, run in self.runs.items():
            epochs, seeds = np.meshgrid(run.record_epochs, run.seeds, indexing="ij")
            frames.append(pd.DataFrame({
                "classifier": label, "seed": seeds.ravel(), "epoch": epochs.ravel(),
                "score": run.traced_scores.mean(2).ravel(), "norm": run.traced_norms.mean(2).ravel(),
                "loss": run.loss[run.record_epochs].ravel(),
            }))
        return pd.concat(frames, ignore_index=True)


def capacity_study(seeds: Sequence[int] = BEYOND_SEEDS, widths: Sequence[int] = (2, 10, 50, 200),
                   epochs: int = 5000, record_every: int = 50, base: RunConfig | None = None,
                   quiet: bool = True) -> CapacityResult:
    """Train Attn-FC, Attn-TC and Attn-TL for each hidden width on the same data, query and embeddings."""
    base = (base or synthetic_preset()).replace(train={"epochs": epochs, "record_every": record_every})
    seeds = [int(s) for s in seeds]
    datasets = [generate_synthetic(base.data, seed) for seed in seeds]
    settings = [("FC", None), ("TC", None)] + [("TL", int(w)) for w in widths]
    runs = {}
    for head, width in settings:
        changes = {"head": head} if width is None else {"head": head, "hidden_units": width}
        config = base.replace(model=changes)
        label = config.model.name if width is None else f"{config.model.name} (h={width})"
        runs[label] = cached_train(config.model, config.train, datasets, seeds,
                                   trace_words=datasets[0].topic_words, quiet=quiet)
    return CapacityResult(base, seeds, runs, datasets)


# ----------------------------------------------------------------------------------------------
# 4. Rate of growth under the fixed classifier
# ----------------------------------------------------------------------------------------------


@dataclass
class GrowthResult:
    """A long Attn-FC run: how score, norm and loss evolve with the epoch t."""

    base: RunConfig
    seeds: list[int]
    run: TrainResult

    @property
    def windows(self) -> list[tuple[int, int]]:
        """Fit windows (first, last epoch): T/15 to T/6, T/6 to T/2, T/2 to T."""
        t = self.base.train.epochs
        return [(t // 15, t // 6), (t // 6, t // 2), (t // 2, t)]

    def curves(self) -> pd.DataFrame:
        """Columns: seed, epoch, score (mean over topic words), norm (mean |q||v|), loss."""
        run = self.run
        epochs, seeds = np.meshgrid(run.record_epochs, run.seeds, indexing="ij")
        return pd.DataFrame({"seed": seeds.ravel(), "epoch": epochs.ravel(),
                             "score": run.traced_scores.mean(2).ravel(), "norm": run.traced_norms.mean(2).ravel(),
                             "loss": run.loss[run.record_epochs].ravel()})

    def local_slopes(self, min_epoch: int = 100) -> pd.DataFrame:
        """The local log-log slope d log y / d log t of score, norm and loss per seed (central differences).

        Columns: seed, epoch, score, norm, loss. A power law t^p has constant slope p; the heuristic of
        spec §3.6 has score and norm slopes falling towards 0 like 1 / ln t and a loss slope tending to -1.
        """
        curves = self.curves()
        curves = curves[curves.epoch >= max(min_epoch, 1)]
        frames = []
        for seed, part in curves.groupby("seed"):
            log_t = np.log(part.epoch.to_numpy(dtype=float))
            frames.append(pd.DataFrame({"seed": seed, "epoch": part.epoch.to_numpy(),
                                        **{q: np.gradient(np.log(part[q].to_numpy()), log_t)
                                           for q in ("score", "norm", "loss")}}))
        return pd.concat(frames, ignore_index=True)

    def fits(self) -> pd.DataFrame:
        """Least-squares fits per seed and window.

        Columns: seed, first_epoch, last_epoch, score_power (slope of log s against log t),
        norm_power (log |q||v| against log t), loss_power (log loss against log t), norm_per_log_t
        (slope of |q||v| against ln t), score_per_loglog_t (slope of s against ln ln t).
        The heuristic of spec §3.6 predicts, for large t: powers tending to 0 for score and norm,
        norm_per_log_t constant, score_per_loglog_t tending to 2, loss_power tending to -1.
        """
        curves = self.curves()
        rows = []
        for seed, part in curves.groupby("seed"):
            for first, last in self.windows:
                window = part[(part.epoch >= max(first, 1)) & (part.epoch <= last)]
                log_t = np.log(window.epoch.to_numpy(dtype=float))
                slope = lambda x, y: float(np.polyfit(x, y, 1)[0])  # noqa: E731
                rows.append({
                    "seed": seed, "first_epoch": first, "last_epoch": last,
                    "score_power": slope(log_t, np.log(window.score)), "norm_power": slope(log_t, np.log(window.norm)),
                    "loss_power": slope(log_t, np.log(window.loss)),
                    "norm_per_log_t": slope(log_t, window.norm.to_numpy()),
                    "score_per_loglog_t": slope(np.log(log_t), window.score.to_numpy()),
                })
        return pd.DataFrame(rows)


def growth_study(seeds: Sequence[int] = BEYOND_SEEDS, epochs: int = 30000, record_every: int = 50,
                 head: str = "FC", base: RunConfig | None = None, quiet: bool = True) -> GrowthResult:
    """Train one head (default the fixed classifier) for ``epochs`` epochs, all seeds in one call."""
    base = (base or synthetic_preset()).replace(model={"head": head},
                                                train={"epochs": epochs, "record_every": record_every})
    seeds = [int(s) for s in seeds]
    datasets = [generate_synthetic(base.data, seed) for seed in seeds]
    run = cached_train(base.model, base.train, datasets, seeds, trace_words=datasets[0].topic_words, quiet=quiet)
    return GrowthResult(base, seeds, run)


# ----------------------------------------------------------------------------------------------
# Tables for the book: one row per setting, mean and range over seeds
# ----------------------------------------------------------------------------------------------


def _spread(values: pd.Series, digits: int = 3) -> str:
    values = values.astype(float)
    if values.isna().any():
        reached = values.dropna()
        if reached.empty:
            return f"not reached ({len(values)} of {len(values)} seeds)"
        return f"{reached.mean():.0f} ({len(reached)} of {len(values)} seeds; the rest never)"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ({values.min():.{digits}f}–{values.max():.{digits}f})"


def sweep_table(result: SweepResult) -> pd.DataFrame:
    """Per sweep, value and model: the worst residual over seeds, against the matching curve and against
    the m = 20 curve, the final mean topic score and t_0.1, as mean (min–max) over seeds."""
    s = result.summary()
    rows = []
    for (sweep, value, model), part in s.groupby(["sweep", "value", "model"], sort=False):
        rows.append({
            "sweep": "m" if sweep == "m" else "query std", "value": f"{value:.3g}", "model": model,
            "|q| (seeds)": f"{part.query_norm.min():.2f}–{part.query_norm.max():.2f}",
            "max |residual|": f"{part.max_abs_residual.max():.4f}",
            "max |residual| vs the m = 20 curve": f"{part.max_abs_residual_m20.max():.4f}",
            "final topic score": _spread(part.final_topic_score_mean, 2),
            "t_0.1 (epochs)": _spread(part["epochs_to_train_loss_0.1"], 0),
        })
    return pd.DataFrame(rows).set_index(["sweep", "value", "model"])


def breaking_table(result: BreakingResult) -> pd.DataFrame:
    """Per case: the assumption it violates and, per model, the worst residual over seeds, topic words
    and epochs and the worst final residual relative to the final |q||v|."""
    s = result.summary()
    rows = []
    for case, part in s.groupby("case", sort=False):
        row = {"case": case, "violates": BREAKING_CASES[case][0]}
        for model, sub in part.groupby("model", sort=False):
            row[f"{model} max |residual|"] = f"{sub.max_abs_residual.max():.4f}"
            row[f"{model} final relative"] = f"{100 * sub.final_relative_residual.max():.1f}%"
        rows.append(row)
    return pd.DataFrame(rows).set_index("case")


def capacity_table(result: CapacityResult) -> pd.DataFrame:
    """Per classifier: trainable head parameters, final topic score, attention weight, t_0.1, final loss
    and the identity's residual, as mean (min–max) over seeds."""
    s = result.summary()
    rows = []
    for label, part in s.groupby("classifier", sort=False):
        rows.append({
            "classifier": label, "trainable head parameters": int(part.trainable_head_parameters.iloc[0]),
            "final topic score": _spread(part.topic_score_mean, 2),
            "attention on the topic word": _spread(part.attention_mean, 2),
            "t_0.1 (epochs)": _spread(part["epochs_to_train_loss_0.1"], 0),
            "final training loss": _spread(part.final_train_loss, 4),
            "identity max |residual|": f"{part.sen_max_abs_residual.max():.4f}",
        })
    return pd.DataFrame(rows).set_index("classifier")


def growth_table(result: GrowthResult) -> pd.DataFrame:
    """Per fit window: the fitted slopes, mean (min–max) over seeds."""
    fits = result.fits()
    rows = []
    for (first, last), part in fits.groupby(["first_epoch", "last_epoch"]):
        rows.append({
            "epochs": f"{first}–{last}",
            "score power (log s vs log t)": _spread(part.score_power, 3),
            "norm power (log n vs log t)": _spread(part.norm_power, 3),
            "loss power (log L vs log t)": _spread(part.loss_power, 2),
            "d n / d ln t": _spread(part.norm_per_log_t, 3),
            "d s / d ln ln t": _spread(part.score_per_loglog_t, 2),
        })
    return pd.DataFrame(rows).set_index("epochs")


# ----------------------------------------------------------------------------------------------
# All four, for the command line
# ----------------------------------------------------------------------------------------------


@dataclass
class BeyondResult:
    """The four studies together, with the flat metrics of ``attnlib run beyond``."""

    suppression: SuppressionResult
    sweeps: SweepResult
    breaking: BreakingResult
    capacity: CapacityResult
    growth: GrowthResult

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every tidy table, by file name."""
        return {
            "suppression_dips": self.suppression.dips(), "suppression_summary": self.suppression.summary(),
            "suppression_curves": self.suppression.curves(),
            "sweep_curves": self.sweeps.curves(), "sweep_summary": self.sweeps.summary(),
            "breaking_curves": self.breaking.curves(), "breaking_summary": self.breaking.summary(),
            "capacity_summary": self.capacity.summary(), "capacity_curves": self.capacity.curves(),
            "growth_curves": self.growth.curves(), "growth_fits": self.growth.fits(),
            "growth_local_slopes": self.growth.local_slopes(),
        }

    def metrics(self) -> dict[str, float | list[int] | str | None]:
        """Flat metrics: worst residual per sweep value and breaking case, dip depths, capacity means, fit slopes."""
        out: dict[str, float | list[int] | str | None] = {}
        for row in self.suppression.summary().itertuples():
            key = f"suppression.{row.model}.std{row.init_std:g}"
            out[f"{key}.max_score_dip"] = float(row.max_score_dip)
            out[f"{key}.score_dips"] = int(row.score_dips)
            out[f"{key}.max_dip_over_bound"] = float(row.max_dip_over_bound)
        sweep = self.sweeps.summary().groupby(["sweep", "model", "value"], sort=False)["max_abs_residual"].max()
        for (name, model, value), residual in sweep.items():
            out[f"sweep.{name}={value:.4g}.{model}.max_abs_residual"] = float(residual)
        breaking = self.breaking.summary().groupby(["case", "model"], sort=False)["max_abs_residual"].max()
        for (case, model), residual in breaking.items():
            out[f"breaking.{case.replace(' ', '_')}.{model}.max_abs_residual"] = float(residual)
        capacity = self.capacity.summary().groupby("classifier", sort=False)[["topic_score_mean", "attention_mean"]].mean()
        for label, row in capacity.iterrows():
            out[f"capacity.{label}.topic_score_mean"] = float(row.topic_score_mean)
            out[f"capacity.{label}.attention_mean"] = float(row.attention_mean)
        last = self.growth.fits().groupby(["first_epoch", "last_epoch"]).mean().iloc[-1]
        for key in ("score_power", "norm_power", "loss_power", "norm_per_log_t", "score_per_loglog_t"):
            out[f"growth.last_window.{key}"] = float(last[key])
        out["seeds"] = list(self.suppression.seeds)
        out["attnlib_version"] = __version__
        return out

    def provenance(self) -> dict:
        """Config hash of every run of the four studies, the seeds and the environment.

        Runs are named like their metrics (``suppression.Attn-FC.std0.001``, ``sweep.m=10.Attn-FC``,
        ``breaking.variable_m.Attn-TC``, ``capacity.Attn-TL (h=50)``, ``growth``). The m sweep hashes
        its own m; a breaking case that changes the data rather than the config (variable m, shared
        topic word) hashes the base data, its name says what changed.
        """
        from dataclasses import replace

        from attnlib.provenance import provenance, run_config_hashes

        data = self.suppression.base.data
        hashes = run_config_hashes(self.suppression.runs, data,
                                   lambda key: f"suppression.{key[0]}.std{key[1]:g}")
        for (sweep, model, value), (run, _, ms) in self.sweeps.runs.items():
            hashes.update(run_config_hashes({f"sweep.{sweep}={value:.4g}.{model}": run},
                                            replace(self.sweeps.base.data, m=int(ms[0]))))
        hashes.update(run_config_hashes(self.breaking.runs, self.breaking.base.data,
                                        lambda key: f"breaking.{key[0].replace(' ', '_')}.{key[1]}"))
        hashes.update(run_config_hashes(self.capacity.runs, self.capacity.base.data,
                                        lambda key: f"capacity.{key}"))
        hashes.update(run_config_hashes({"growth": self.growth.run}, self.growth.base.data))
        return provenance(hashes, self.suppression.seeds)


def run_beyond(seeds: Sequence[int] = BEYOND_SEEDS, quiet: bool = True, base: RunConfig | None = None) -> BeyondResult:
    """All four studies at their default (book) settings, each derived from ``base`` (default: the synthetic preset)."""
    return BeyondResult(suppression_study(seeds, quiet=quiet, base=base),
                        identity_sweeps(seeds, quiet=quiet, base=base),
                        breaking_cases(seeds, quiet=quiet, base=base),
                        capacity_study(seeds, quiet=quiet, base=base),
                        growth_study(seeds, quiet=quiet, base=base))
