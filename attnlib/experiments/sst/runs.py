"""One SST setting's run, reduced to what T1, F5, F6 and F7 need (:class:`SSTRun`), and the reductions.

All seeds of a setting are trained in one batched :func:`attnlib.train.train` call
(:mod:`~attnlib.experiments.sst.training`). A run is reduced right after training: the loss trajectories,
the scores and norms of the words F5 and F7 plot, F6's purity/occurrence curves (computed from the scores of
*all* words before the reduction), and, at the restored best epoch, every word's score and
classifier-projected embedding (from which the reported losses and accuracies can be recomputed). The corpus
transforms live in :mod:`attnlib.data.transforms`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from attnlib import theory
from attnlib.config import HEADS, RunConfig
from attnlib.data.corpus import Corpus
from attnlib.data.transforms import PAD_ID, word_purity
from attnlib.experiments.sst.settings import EVERY_SENTENCE, F7_SENTENCE, F7_WORDS, N_TOP, TURN_DROP

# --------------------------------------------------------------------------- F6: purity and occurrence


def top_tokens(sentences: Sequence[np.ndarray], scores: np.ndarray) -> np.ndarray:
    """Per sentence, the token with the largest score; ties go to the earliest position (np.argmax)."""
    return np.array([s[int(np.argmax(scores[s]))] for s in sentences], dtype=np.int64)


def attention_shift(corpus: Corpus, scores: np.ndarray, words: Iterable[int],
                    mask_pad: bool = True, n_classes: int | None = None) -> pd.DataFrame:
    """F6 for one seed: ``scores`` (R, V) over snapshots; for each word u0 the purity Π, the floored
    occurrence Ω (thousands) and the unfloored Ω~ of the top-scored tokens of the sentences with u0
    (of every sentence for u0 = :data:`EVERY_SENTENCE`). Purity and occurrence are those of
    :func:`~attnlib.data.transforms.word_purity` on ``corpus`` with ``n_classes`` classes."""
    occ, purity = word_purity(corpus, n_classes)
    rows = []
    sentences = [s[s != PAD_ID] if mask_pad else s for s in corpus.sentences]
    for u0 in words:
        chosen = sentences if u0 == EVERY_SENTENCE else [s for s in sentences if np.any(s == u0)]
        for r in range(scores.shape[0]):
            top = top_tokens(chosen, scores[r])
            rows.append({"word_id": int(u0), "snapshot": r, "purity": float(purity[top].mean()),
                         "occurrence": float(np.floor(occ[top] / 1000).mean()),
                         "occurrence_unfloored": float((occ[top] / 1000).mean()),
                         "top_is_word": float(np.mean(top == u0))})
    return pd.DataFrame(rows)


def sentence_weights(scores: np.ndarray, sentence: np.ndarray) -> np.ndarray:
    """Attention weights (..., L) of each position of ``sentence`` given word scores (..., V)."""
    s = scores[..., sentence]
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=-1, keepdims=True)


def padding_attention(corpus: Corpus, scores: np.ndarray, pad_id: int = PAD_ID) -> np.ndarray:
    """Mean attention weight of ``$PAD$`` over the sentences of a padded corpus, per snapshot and seed.

    ``scores`` is (R, S, V); a sentence's weight on padding is n_pad e^s_pad / sum_w n_w e^s_w.
    """
    counts = corpus.counts
    pads = counts[:, pad_id].toarray().ravel().astype(np.float64)
    out = np.empty(scores.shape[:2], dtype=np.float32)
    for r, snapshot in enumerate(scores):
        weights = np.exp(snapshot.astype(np.float64) - snapshot.max(axis=1, keepdims=True))  # (S, V)
        out[r] = (pads[:, None] * weights[:, pad_id] / (counts @ weights.T)).mean(axis=0)
    return out


def crossing_epochs(epochs: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[int]:
    """Epochs at which the sign of a - b changes (the first epoch with the new sign); exact ties skipped."""
    d = np.sign(np.asarray(a) - np.asarray(b))
    out, last = [], 0
    for t, x in zip(epochs, d):
        if x == 0:
            continue
        if last != 0 and x != last:
            out.append(int(t))
        last = x
    return out


def _leader(powerful: float, best: float) -> str:
    """Which of the two F7 words has the larger weight; "tied" when the weights are equal (as stored)."""
    if powerful == best:
        return "tied"
    return "powerful" if powerful > best else "best"


def crossings_summary(crossings: pd.DataFrame) -> pd.DataFrame:
    """F7 per setting (model, variant) from :meth:`SSTRun.f7_crossings`: how many seeds' weight curves cross,
    the range of the first crossing's epoch, and who is ahead first and at the end (each with its
    number of seeds, e.g. "best (3)")."""
    def counts(values: pd.Series) -> str:
        return ", ".join(f"{word} ({n})" for word, n in values.value_counts().items())

    rows = []
    for (model, variant), part in crossings.groupby(["model", "variant"], sort=False):
        first = pd.to_numeric(part.first_crossing, errors="coerce").dropna()
        rows.append({"model": model, "variant": variant, "seeds": len(part), "seeds crossing": len(first),
                     "first crossing (epoch)": (f"{int(first.min())}" if first.min() == first.max() else
                                                f"{int(first.min())} to {int(first.max())}") if len(first) else "–",
                     "ahead first": counts(part.leader_first), "ahead at the end": counts(part.leader_last)})
    return pd.DataFrame(rows)



def score_turns(curves: pd.DataFrame, drop: float = TURN_DROP) -> pd.DataFrame:
    """The words of ``curves`` (:meth:`SSTRun.sen_curves`) whose score turns back (see :data:`TURN_DROP`): per
    seed and word, the epoch and score at the peak and the score at the last snapshot, by rank."""
    rows = []
    for (seed, rank, word), g in curves.groupby(["seed", "rank", "word"], sort=True):
        g = g.sort_values("epoch")
        peak = g.loc[g.score.idxmax()]
        last = g.iloc[-1]
        if peak.score > 0 and last.score < drop * peak.score:
            rows.append({"seed": seed, "rank": rank, "word": word, "peak_epoch": int(peak.epoch),
                         "peak_score": float(peak.score), "peak_norm": float(peak.norm),
                         "last_epoch": int(last.epoch), "last_score": float(last.score),
                         "last_norm": float(last.norm), "last_theory": float(last.theory)})
    return pd.DataFrame(rows, columns=["seed", "rank", "word", "peak_epoch", "peak_score", "peak_norm",
                                       "last_epoch", "last_score", "last_norm", "last_theory"])


# --------------------------------------------------------------------------- one reduced run


@dataclass
class SSTRun:
    """One setting (kind, head, variant), all seeds, reduced to what T1/F5/F6/F7 need."""

    kind: str
    head: str
    variant: str
    config: RunConfig
    seeds: list[int]
    loss: np.ndarray  # (T+1, S) training loss; NaN after a seed stopped
    dev_loss: np.ndarray  # (T+1, S)
    record_epochs: np.ndarray  # (R,)
    test_accuracy_curve: np.ndarray  # (R, S)
    words: np.ndarray  # (W,) vocabulary ids of the traced words kept
    word_names: list[str]
    m_w: np.ndarray  # (W,) the word's own mean sentence length minus one, the m of its identity curve
    scores: np.ndarray  # (R, S, W)
    norms: np.ndarray  # (R, S, W) |q||v_w|
    top: np.ndarray  # (S, N_TOP) word ids ranked by the score at the last snapshot ($PAD$ excluded when masked)
    final_test_accuracy: np.ndarray  # (S,)
    stopped_epoch: np.ndarray  # (S,)
    best_epoch: np.ndarray  # (S,)
    query_norm: np.ndarray  # (S,)
    shift: pd.DataFrame  # F6 per seed, word, snapshot (SST2 only; empty otherwise)
    f7_weights: np.ndarray  # (R, S, L) attention weights of the F7 sentence's positions (SST2 only)
    provenance: dict = field(default_factory=dict)
    source: str = "retrained"  # or "stored"
    pad_weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    """(R, S) mean attention weight of ``$PAD$`` over the training sentences (unmasked variant only)."""
    best_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    """(S, V) every word's score at the restored best epoch (runs stored since format 2)."""
    best_projected: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.float32))
    """(S, V, K) every word's embedding through the classifier's linear layer, E U, at the best epoch."""
    at_best: dict = field(default_factory=dict)
    """Per seed at the best epoch, as the engine computed them: train/dev/test loss and accuracy."""
    store_format: int = 2

    @property
    def name(self) -> str:
        return HEADS[self.head]

    @property
    def key(self) -> str:
        return f"{self.kind}_{self.head}_{self.variant}"

    def last_index(self, k: int) -> int:
        """Index of seed k's last snapshot taken while it was still training."""
        return int(np.searchsorted(self.record_epochs, self.stopped_epoch[k], side="right") - 1)

    def plateau_exit(self, k: int, fraction: float = 0.95) -> float:
        """First epoch whose training loss is below ``fraction`` times the initial loss; NaN if never."""
        loss = self.loss[:, k]
        hit = np.flatnonzero(loss <= fraction * loss[0])
        return float(hit[0]) if hit.size else float("nan")

    # ---- tidy tables

    def per_seed(self) -> pd.DataFrame:
        """T1 per seed: test accuracy (at the best epoch), best and stopping epoch, train/dev loss there."""
        rows = []
        for k, seed in enumerate(self.seeds):
            b = int(self.best_epoch[k])
            rows.append({"dataset": self.kind, "model": self.name, "variant": self.variant, "seed": seed,
                         "test_accuracy": float(self.final_test_accuracy[k]), "best_epoch": b,
                         "stopped_epoch": int(self.stopped_epoch[k]), "train_loss_at_best": float(self.loss[b, k]),
                         "dev_loss_at_best": float(self.dev_loss[b, k]), "query_norm": float(self.query_norm[k]),
                         "left_plateau_epoch": self.plateau_exit(k),
                         "hit_cap": bool(self.stopped_epoch[k] >= self.config.train.epochs),
                         "source": self.source})
        return pd.DataFrame(rows)

    def losses(self, every: int = 10) -> pd.DataFrame:
        """Training and dev loss per epoch (thinned to every ``every`` epochs) and seed."""
        epochs = np.arange(0, self.loss.shape[0], every)
        frames = []
        for k, seed in enumerate(self.seeds):
            keep = epochs[~np.isnan(self.loss[epochs, k])]
            frames.append(pd.DataFrame({"dataset": self.kind, "model": self.name, "variant": self.variant,
                                        "seed": seed, "epoch": keep, "train_loss": self.loss[keep, k],
                                        "dev_loss": self.dev_loss[keep, k]}))
        return pd.concat(frames, ignore_index=True)

    def sen_curves(self, n_top: int = N_TOP, m: float | None = None) -> pd.DataFrame:
        """F5: for each seed its top words' (score, |q||v|) at every snapshot, with sqrt(2 φ_m(s)) and the gap."""
        pos = {int(w): i for i, w in enumerate(self.words)}
        frames = []
        for k, seed in enumerate(self.seeds):
            last = self.last_index(k)
            cols = np.array([pos[int(w)] for w in self.top[k, :n_top]])
            s = self.scores[: last + 1, k][:, cols].astype(np.float64)
            n = self.norms[: last + 1, k][:, cols].astype(np.float64)
            mw = np.broadcast_to(self.m_w[cols] if m is None else np.full(len(cols), float(m)), s.shape)
            pred = theory.sen_norm(s, mw)
            epochs = np.broadcast_to(self.record_epochs[: last + 1, None], s.shape)
            rank = np.broadcast_to(np.arange(1, len(cols) + 1), s.shape)
            with np.errstate(invalid="ignore", divide="ignore"):
                gap = np.abs(n - pred) / pred
            frames.append(pd.DataFrame({
                "dataset": self.kind, "model": self.name, "variant": self.variant, "seed": seed,
                "epoch": epochs.ravel(), "rank": rank.ravel(),
                "word": np.array(self.word_names, dtype=object)[cols][np.broadcast_to(np.arange(len(cols)), s.shape).ravel()],
                "m_w": mw.ravel(), "score": s.ravel(), "norm": n.ravel(), "theory": pred.ravel(), "rel_gap": gap.ravel()}))
        return pd.concat(frames, ignore_index=True)

    def sen_gaps(self, n_top: int = N_TOP, m: float | None = None) -> pd.DataFrame:
        """F5 summary: the relative gap at each seed's last snapshot for its top words."""
        curves = self.sen_curves(n_top, m)
        last = curves.groupby("seed")["epoch"].transform("max")
        return curves[curves["epoch"] == last].reset_index(drop=True)

    def turns(self, n_top: int = N_TOP) -> pd.DataFrame:
        """F5: :func:`score_turns` of each seed's top ``n_top`` words (:meth:`sen_curves`)."""
        return score_turns(self.sen_curves(n_top=n_top))

    def accuracy_curves(self) -> pd.DataFrame:
        """Test accuracy (%) at every snapshot while training, per seed: columns seed, epoch, test accuracy (%)."""
        frames = []
        for k, seed in enumerate(self.seeds):
            last = self.last_index(k)
            frames.append(pd.DataFrame({"seed": seed, "epoch": self.record_epochs[: last + 1],
                                        "test accuracy (%)": 100 * self.test_accuracy_curve[: last + 1, k]}))
        return pd.concat(frames, ignore_index=True)

    def shift_curves(self) -> pd.DataFrame:
        """F6 as a tidy table with epochs and words (empty for SST5)."""
        if self.shift.empty:
            return self.shift
        df = self.shift.copy()
        df["epoch"] = self.record_epochs[df["snapshot"].to_numpy()]
        df["word"] = ["(every sentence)" if w == EVERY_SENTENCE else self.word_names[int(np.flatnonzero(self.words == w)[0])]
                      for w in df["word_id"]]
        df.insert(0, "model", self.name)
        df.insert(1, "variant", self.variant)
        keep = df["epoch"].to_numpy() <= self.stopped_epoch[df["seed_index"].to_numpy()]
        return df[keep].drop(columns=["snapshot"]).reset_index(drop=True)

    def single_sentence(self) -> pd.DataFrame:
        """F7: weight (within the sentence), score and |q||v| of "powerful" and "best" per snapshot and seed."""
        if self.f7_weights.size == 0:
            return pd.DataFrame()
        tokens = F7_SENTENCE.split()
        frames = []
        for k, seed in enumerate(self.seeds):
            last = self.last_index(k)
            for word in F7_WORDS:
                j = tokens.index(word)
                col = self.word_names.index(word)
                frames.append(pd.DataFrame({
                    "model": self.name, "variant": self.variant, "seed": seed, "word": word,
                    "epoch": self.record_epochs[: last + 1], "weight": self.f7_weights[: last + 1, k, j],
                    "score": self.scores[: last + 1, k, col].astype(float),
                    "norm": self.norms[: last + 1, k, col].astype(float)}))
        return pd.concat(frames, ignore_index=True)

    def f7_score_peaks(self) -> pd.DataFrame:
        """Per seed and F7 word: the epoch of its largest score, its last epoch, and how far the score fell
        from that peak by the end (0 when it ends at its peak)."""
        df = self.single_sentence()
        rows = []
        for (seed, word), g in df.groupby(["seed", "word"], sort=False):
            peak = g.loc[g.score.idxmax()]
            rows.append({"model": self.name, "variant": self.variant, "seed": seed, "word": word,
                         "peak_epoch": int(peak.epoch), "last_epoch": int(g.epoch.iloc[-1]),
                         "fall_after_peak": float(peak.score - g.score.iloc[-1])})
        return pd.DataFrame(rows)

    def f7_crossings(self) -> pd.DataFrame:
        """Per seed, the epochs where the weight curves of "powerful" and "best" cross, who is ahead first (at
        the first snapshot after step 1 where the two weights differ as stored) and who ends ahead."""
        df = self.single_sentence()
        rows = []
        for seed, g in df.groupby("seed"):
            a = g[g.word == "powerful"].set_index("epoch")["weight"]
            b = g[g.word == "best"].set_index("epoch")["weight"]
            crosses = crossing_epochs(a.index.to_numpy()[1:], a.to_numpy()[1:], b.to_numpy()[1:])
            rows.append({"model": self.name, "variant": self.variant, "seed": seed, "crossings": crosses,
                         "first_crossing": crosses[0] if crosses else None,
                         "leader_first": next((_leader(x, y) for x, y in zip(a.iloc[1:], b.iloc[1:]) if x != y),
                                              "tied"),
                         "leader_last": _leader(a.iloc[-1], b.iloc[-1])})
        return pd.DataFrame(rows)
