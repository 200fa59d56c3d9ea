"""Where the identity breaks: one assumption at a time violated on purpose (large steps, a large
embedding init, variable sentence length, a topic word shared by two topics, a trainable query)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from attnlib import theory
from attnlib.config import RunConfig, synthetic_preset
from attnlib.data import Corpus, Dataset, generate_synthetic
from attnlib.experiments.base import ExperimentResult, train_grid
from attnlib.experiments.beyond.traces import BEYOND_SEEDS, traced_table
from attnlib.model import init_params
from attnlib.provenance import run_config_hashes
from attnlib.train import TrainResult

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
class BreakingResult(ExperimentResult):
    """The identity when one assumption at a time is violated on purpose."""

    runs: dict[tuple[str, str], TrainResult]
    """(case, model) -> run."""
    words: dict[str, np.ndarray]
    """case -> the topic words that occur in its training data (the residual is taken over these)."""

    def curves(self) -> pd.DataFrame:
        """Columns: case, model, seed, m, epoch, word, score, norm, theory (general-init identity with
        m = 20), residual."""
        frames = []
        for (case, model), run in self.runs.items():
            table = traced_table(run, {"case": case, "model": model}, self.config.data.m)
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
        curves["default"] = curves.norm - theory.sen_norm(curves.score.to_numpy(), self.config.data.m)
        rows = []
        for (case, model, seed), part in curves.groupby(["case", "model", "seed"], sort=False):
            run = self.runs[(case, model)]
            k = run.seeds.index(seed)
            last = part[part.epoch == part.epoch.max()]
            initial_query = float(init_params(run.model, run.final_scores.shape[1],
                                              self.config.data.n_topics, [seed], torch.float64,
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
    """Train each case of :data:`BREAKING_CASES` for every head, all seeds of a case in one call (the
    baseline is the same call as the m = 20 setting of :func:`identity_sweeps`, read from the cache)."""
    base = (base or synthetic_preset()).replace(train={"epochs": epochs, "record_every": record_every})
    seeds = [int(s) for s in seeds]
    plain = [generate_synthetic(base.data, seed) for seed in seeds]
    settings, words = {}, {}
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
            settings[(case, run_config.model.name)] = (run_config, datasets)
    runs = train_grid(settings, seeds, plain[0].topic_words, quiet)
    return BreakingResult(base, seeds, runs, words)



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



def breaking_hashes(result: BreakingResult) -> dict[str, str]:
    """Config hashes named like the metrics, e.g. ``breaking.variable_m.Attn-TC``. A case that changes the
    data rather than the config (variable m, shared topic word) hashes the base data; its name says what changed."""
    return run_config_hashes(result.runs, result.config.data, lambda key: f"breaking.{key[0].replace(' ', '_')}.{key[1]}")
