"""Analyses of the TREC runs: baselines on the same tokens and split, the attention shift (the analogue of
F6), the score-norm relation on real words (the analogue of F5) and the words whose score rises and then falls.

A TREC run is an :class:`~attnlib.experiments.sst.runs.SSTRun` of kind ``TREC`` (the same reduction and store as
the SST runs). Every function returns a table with readable column names, so that the chapter only shows
what is computed (and tested) here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from attnlib import theory
from attnlib.data.corpus import Corpus, Dataset
from attnlib.data.transforms import PAD_ID, mean_length_minus_one, word_purity
from attnlib.experiments.sst.runs import SSTRun, top_tokens
from attnlib.experiments.sst.settings import EVERY_SENTENCE

WH_WORDS = ("what", "which", "who", "whom", "whose", "where", "when", "why", "how", "name")
"""Question words the lookup baseline keys on (with "name", which opens TREC's imperative questions such as
"Name a ..."): the first of them in a question, and for "how" also the word after it ("how many", "how far")."""
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
"""Regularisation strengths tried for the linear baselines; the one with the best dev accuracy is kept."""
MIN_OCCURRENCE = 20
"""The score-norm and rise-and-fall analyses use the words in at least 20 training questions: rarer words'
scores barely move (each has a handful of gradient terms), and their purity rests on too few questions."""
RISE_FALL_DROP = 0.5
"""A word rises and then falls when its score at the best epoch is below half its peak (and the peak is
above :data:`PEAK_MIN`): it lost most of what it had gained, not just some rounding."""
PEAK_MIN = 0.2
"""Smallest peak score that counts as a rise (scores start at 0; the top words reach scores of several units)."""
PURE_WORD = 0.9
"""Class purity on the training split from which a word counts as pure: nine in ten of the questions containing
it are of one class, so a fall of its score cannot be blamed on its mixing classes."""
SHIFT_WORDS = ("what", "how", "many", "who", "where", "when", "why")
"""Question words whose questions' attention shift is traced besides the one over every question."""
FIRST_EPOCH = 1
"""The first step's snapshot (at epoch 0 every score is 0, so every word ties)."""
EARLY_EPOCH = 500
"""An early snapshot: a few percent of the way to the best epochs (thousands of epochs for every head)."""


def traced_words(dataset: Dataset) -> tuple[list[int], list[int], tuple[int, ...]]:
    """What a TREC run keeps besides each seed's top words (see
    :func:`attnlib.experiments.sst.training.traced_choice`): the attention shift over every question and over
    the questions with each of :data:`SHIFT_WORDS`; the scores and norms of every word in at least
    :data:`MIN_OCCURRENCE` training questions; and every question's most-attended word at the first step and
    at :data:`EARLY_EPOCH`."""
    index = {w: i for i, w in enumerate(dataset.vocab)}
    occ, _ = word_purity(dataset.train, dataset.n_classes)
    frequent = np.flatnonzero(occ >= MIN_OCCURRENCE).tolist()
    return [EVERY_SENTENCE] + [index[w] for w in SHIFT_WORDS if w in index], frequent, (FIRST_EPOCH, EARLY_EPOCH)


# --------------------------------------------------------------------------- baselines


def wh_key(tokens: Sequence[str]) -> str:
    """The lookup key of one question: its first word of :data:`WH_WORDS` ("how" with the next word), or
    "(none)"."""
    for i, token in enumerate(tokens):
        if token in WH_WORDS:
            if token == "how" and i + 1 < len(tokens):
                return f"how {tokens[i + 1]}"
            return token
    return "(none)"


def wh_lookup(train_texts: Sequence[Sequence[str]], train_labels: Sequence[int],
              texts: Sequence[Sequence[str]]) -> np.ndarray:
    """Predicted classes: the most common training class of each question's :func:`wh_key`; a key never
    seen in training falls back to the most common training class (ties go to the smaller class index)."""
    by_key: dict[str, Counter] = {}
    for tokens, label in zip(train_texts, train_labels):
        by_key.setdefault(wh_key(tokens), Counter())[int(label)] += 1
    overall = Counter(int(y) for y in train_labels)
    majority = lambda counts: min(counts, key=lambda c: (-counts[c], c))  # noqa: E731
    table = {key: majority(counts) for key, counts in by_key.items()}
    fallback = majority(overall)
    return np.array([table.get(wh_key(tokens), fallback) for tokens in texts], dtype=np.int64)


def linear_baselines(dataset: Dataset, c_grid: Sequence[float] = C_GRID) -> pd.DataFrame:
    """Bag-of-words logistic regression and linear SVM (scikit-learn) on the word counts the attention
    models see, C chosen by dev accuracy; one row per model with the chosen C and dev and test accuracy (%)."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415 - scikit-learn takes a second to import
    from sklearn.svm import LinearSVC  # noqa: PLC0415 - scikit-learn takes a second to import
    from threadpoolctl import threadpool_limits  # noqa: PLC0415 - scikit-learn's dependency, needed only here

    train, dev, test = (dataset.splits[s] for s in ("train", "dev", "test"))
    makers = {"logistic regression (bag of words)": lambda c: LogisticRegression(C=c, max_iter=5000),
              "linear SVM (bag of words)": lambda c: LinearSVC(C=c, max_iter=20000, random_state=0)}
    rows = []
    for name, make in makers.items():
        best = None
        for c in c_grid:
            with threadpool_limits(1):  # problems this small run ~10x faster in CPU time on one BLAS thread
                model = make(c).fit(train.counts, train.labels)
            dev_acc = float((model.predict(dev.counts) == dev.labels).mean())
            if best is None or dev_acc > best[0]:
                best = (dev_acc, c, model)
        dev_acc, c, model = best
        rows.append({"model": name, "C": c, "dev accuracy (%)": 100 * dev_acc,
                     "test accuracy (%)": 100 * float((model.predict(test.counts) == test.labels).mean())})
    return pd.DataFrame(rows)


def lookup_baseline(dataset: Dataset) -> pd.DataFrame:
    """The wh-word lookup (:func:`wh_lookup`) learned on the training split: dev and test accuracy (%)."""
    texts = {s: [[dataset.vocab[i] for i in q] for q in dataset.splits[s].sentences] for s in ("train", "dev", "test")}
    train_labels = dataset.train.labels
    accuracy = {s: 100 * float((wh_lookup(texts["train"], train_labels, texts[s]) == dataset.splits[s].labels).mean())
                for s in ("dev", "test")}
    return pd.DataFrame([{"model": "wh-word lookup", "C": np.nan, "dev accuracy (%)": accuracy["dev"],
                          "test accuracy (%)": accuracy["test"]}])


# --------------------------------------------------------------------------- the attention shift (F6 analogue)


def snapshot_index(run: SSTRun, epoch: int) -> int:
    """Index of the last snapshot at or before ``epoch``."""
    return int(np.searchsorted(run.record_epochs, epoch, side="right") - 1)


def full_scores(run: SSTRun, r: int, k: int, vocab_size: int) -> np.ndarray:
    """Seed k's scores at snapshot r over the whole vocabulary: the kept words' scores, -inf elsewhere
    (the most-attended word of every training question at the snapshots the run keeps them for is kept)."""
    out = np.full(vocab_size, -np.inf)
    out[run.words] = run.scores[r, k].astype(np.float64)
    return out


def stage_scores(run: SSTRun, k: int, stages: dict[str, int], vocab_size: int) -> dict[str, np.ndarray]:
    """Seed k's scores over the vocabulary at named stages: an epoch (its snapshot's kept scores), or
    ``-1`` for the best epoch (every word's score, stored at the restored best epoch)."""
    out = {}
    for name, epoch in stages.items():
        out[name] = (run.best_scores[k].astype(np.float64) if epoch < 0
                     else full_scores(run, snapshot_index(run, epoch), k, vocab_size))
    return out


def stage_tops(run: SSTRun, corpus: Corpus, vocab: Sequence[str], stages: dict[str, int],
               n_classes: int) -> pd.DataFrame:
    """The most-attended word of every training question at each stage and seed, with that word's
    occurrence (training questions containing it) and purity (:func:`word_purity` on the training split)."""
    occ, purity = word_purity(corpus, n_classes)
    frames = []
    for k, seed in enumerate(run.seeds):
        for stage, scores in stage_scores(run, k, stages, len(vocab)).items():
            top = top_tokens(corpus.sentences, scores)
            frames.append(pd.DataFrame({"model": run.name, "seed": seed, "stage": stage, "question": np.arange(len(top)),
                                        "label": corpus.labels, "word": np.array(vocab, dtype=object)[top],
                                        "occurrence": occ[top], "purity": purity[top]}))
    return pd.concat(frames, ignore_index=True)


def stage_summary(tops: pd.DataFrame, n_common: int = 3) -> pd.DataFrame:
    """Per model, seed and stage: the mean occurrence and purity of the questions' most-attended words, how
    many distinct words they are, and the most common ones with their share of the questions."""
    rows = []
    for (model, seed, stage), g in tops.groupby(["model", "seed", "stage"], sort=False):
        shares = g.word.value_counts(normalize=True, sort=True)
        common = shares.sort_index().sort_values(ascending=False, kind="stable").head(n_common)
        rows.append({"model": model, "seed": seed, "stage": stage,
                     "mean occurrence of the most-attended word": float(g.occurrence.mean()),
                     "mean purity of the most-attended word": float(g.purity.mean()),
                     "distinct most-attended words": int(g.word.nunique()),
                     "most common": ", ".join(f"{w} ({100 * s:.0f} %)" for w, s in common.items())})
    return pd.DataFrame(rows)


def top_words_per_class(tops: pd.DataFrame, classes: Sequence[str], stage: str = "best epoch",
                        n: int = 5) -> pd.DataFrame:
    """At one stage, per model and class: the words most often most-attended in that class's training
    questions (over all seeds), with the share of the class's questions and the word's purity."""
    rows = []
    g_stage = tops[tops.stage == stage]
    for (model, label), g in g_stage.groupby(["model", "label"], sort=True):
        counts = g.groupby("word").agg(n=("question", "size"), purity=("purity", "first"))
        counts = counts.sort_index().sort_values("n", ascending=False, kind="stable").head(n)
        rows.append({"model": model, "class": classes[int(label)],
                     "most-attended words (share of the class's questions, purity)":
                         ", ".join(f"{w} ({100 * r.n / len(g):.0f} %, {r.purity:.2f})" for w, r in counts.iterrows())})
    return pd.DataFrame(rows)


def shift_over_training(run: SSTRun) -> pd.DataFrame:
    """Over every training question, per seed and snapshot up to its stop: the mean occurrence (questions)
    and purity of the most-attended words (the run's traced shift for :data:`EVERY_SENTENCE`)."""
    df = run.shift_curves()
    df = df[df.word_id == EVERY_SENTENCE]
    return pd.DataFrame({"model": run.name, "seed": df.seed.to_numpy(), "epoch": df.epoch.to_numpy(),
                         "mean occurrence": 1000 * df.occurrence_unfloored.to_numpy(),
                         "mean purity": df.purity.to_numpy()})


# --------------------------------------------------------------------------- the score-norm relation (F5 analogue)


def score_norm_table(run: SSTRun, corpus: Corpus, n_classes: int, min_occurrence: int = MIN_OCCURRENCE) -> pd.DataFrame:
    """Per seed and kept word in at least ``min_occurrence`` training questions, at the snapshot of the best
    epoch: score, |q||v|, the identity's |q||v| for that score with the word's own m_w
    (:func:`attnlib.theory.sen_norm`; 0 where the score is negative, for which the identity has no solution),
    |q||v| at epoch 0, the relative gap (NaN where the identity gives 0), and whether the score rose or fell."""
    occ, purity = word_purity(corpus, n_classes)
    m_w = mean_length_minus_one(corpus)
    keep = np.array([i for i, w in enumerate(run.words) if w != PAD_ID and occ[w] >= min_occurrence], dtype=np.int64)
    frames = []
    for k, seed in enumerate(run.seeds):
        r = snapshot_index(run, int(run.best_epoch[k]))
        s = run.scores[r, k, keep].astype(np.float64)
        n = run.norms[r, k, keep].astype(np.float64)
        ids = run.words[keep]
        pred = theory.sen_norm(s, m_w[ids])
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.where(pred > 0, np.abs(n - pred) / pred, np.nan)
        frames.append(pd.DataFrame({"model": run.name, "seed": seed, "epoch": int(run.record_epochs[r]),
                                    "word": np.array(run.word_names, dtype=object)[keep], "occurrence": occ[ids],
                                    "purity": purity[ids], "m_w": m_w[ids], "score": s, "norm": n, "theory": pred,
                                    "norm_at_start": run.norms[0, k, keep].astype(np.float64), "rel_gap": gap,
                                    "direction": np.where(s >= 0, "rises", "falls")}))
    return pd.concat(frames, ignore_index=True)


def score_norm_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per model and direction (over seeds and words): how many words, their median purity, the median
    relative gap to the identity (rising words), and the share whose |q||v| grew from its start."""
    rows = []
    for (model, direction), g in table.groupby(["model", "direction"], sort=False):
        rows.append({"model": model, "score": direction, "word-seed pairs": len(g),
                     "median purity": float(g.purity.median()),
                     "median relative gap to the identity": float(g.rel_gap.median()) if g.rel_gap.notna().any()
                     else np.nan,
                     "share whose |q||v| grew (%)": 100 * float((g.norm > g.norm_at_start).mean()),
                     "median |q||v|": float(g.norm.median())})
    return pd.DataFrame(rows)


def purity_direction_correlation(table: pd.DataFrame) -> pd.DataFrame:
    """Per model, Spearman's rank correlation of a word's purity with its score at the best epoch (over
    word-seed pairs): the paper's account predicts that pure words gain and mixed ones lose."""
    from scipy.stats import spearmanr  # noqa: PLC0415 - only this analysis needs it

    return pd.DataFrame([{"model": model, "Spearman correlation of purity and score": float(spearmanr(g.purity, g.score)[0]),
                          "word-seed pairs": len(g)} for model, g in table.groupby("model", sort=False)])


# --------------------------------------------------------------------------- words that rise and then fall


def rise_and_fall(run: SSTRun, corpus: Corpus, n_classes: int, min_occurrence: int = MIN_OCCURRENCE,
                  drop: float = RISE_FALL_DROP, peak_min: float = PEAK_MIN) -> pd.DataFrame:
    """Per seed and kept word in at least ``min_occurrence`` training questions: its peak score up to the
    best epoch, the epoch of the peak, its score at the best epoch's snapshot, and whether it rose and then
    fell (peak > ``peak_min`` and final < ``drop`` x peak)."""
    occ, purity = word_purity(corpus, n_classes)
    keep = np.array([i for i, w in enumerate(run.words) if w != PAD_ID and occ[w] >= min_occurrence], dtype=np.int64)
    frames = []
    for k, seed in enumerate(run.seeds):
        r = snapshot_index(run, int(run.best_epoch[k]))
        s = run.scores[: r + 1, k][:, keep].astype(np.float64)
        peak_at = s.argmax(axis=0)
        peak, final = s.max(axis=0), s[-1]
        ids = run.words[keep]
        frames.append(pd.DataFrame({"model": run.name, "seed": seed,
                                    "word": np.array(run.word_names, dtype=object)[keep],
                                    "occurrence": occ[ids], "purity": purity[ids], "peak score": peak,
                                    "peak epoch": run.record_epochs[peak_at], "score at the best epoch": final,
                                    "rises then falls": (peak > peak_min) & (final < drop * peak)}))
    return pd.concat(frames, ignore_index=True)


def word_curves(run: SSTRun, words: Sequence[str]) -> pd.DataFrame:
    """Score and |q||v| of the named kept words per seed and snapshot, up to each seed's stop."""
    frames = []
    for word in words:
        if word not in run.word_names:
            continue
        j = run.word_names.index(word)
        for k, seed in enumerate(run.seeds):
            last = run.last_index(k)
            frames.append(pd.DataFrame({"model": run.name, "seed": seed, "word": word,
                                        "epoch": run.record_epochs[: last + 1],
                                        "score": run.scores[: last + 1, k, j].astype(np.float64),
                                        "norm": run.norms[: last + 1, k, j].astype(np.float64)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
