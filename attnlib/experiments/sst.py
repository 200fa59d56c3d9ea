"""T1, F5, F6, F7 on the Stanford Sentiment Treebank (spec §5, §6, §7.3).

One *setting* is (dataset kind, head, variant) with variant in :data:`attnlib.config.SST_VARIANTS`;
all seeds of a setting are trained in one batched :func:`attnlib.train.train` call. A run is
reduced right after training to what the tables and figures need (:class:`SSTRun`): the loss
trajectories, the scores and norms of the words F5 and F7 plot, and F6's purity/occurrence curves
(computed from the scores of *all* words before the reduction). Such a reduced run can be stored
under ``results/sst/`` with full provenance and served again when its configuration hash matches
(:func:`load_or_train`); :func:`verify_stored` retrains the first epochs of a stored run and
compares the per-epoch training loss.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from attnlib import paper, theory
from attnlib.config import HEADS, SST_VARIANTS, RunConfig, sst_preset
from attnlib.data.corpus import Corpus, Dataset

SST_SEEDS = (0, 1, 2)
"""Seeds of the SST runs (3 rather than the spec's 5: the CI budget; see the chapter)."""
N_TOP = 100
"""F5: words with the largest score at the last snapshot."""
F6_WORDS = ("powerful", "stupid", "solid", "suffers", "mess")
F7_SENTENCE = "a powerful sequel and one of the best films of the year"
F7_WORDS = ("powerful", "best")
PAD_ID = 0
PADDED_LENGTH = 52
"""Longest sentence over all splits of both datasets (spec §6.5); the unmasked variant pads to it."""
VERIFY_EPOCHS = 200
"""Epochs a stored run's loss trajectory is re-checked over."""
STORE_DIR = Path(__file__).resolve().parents[2] / "results" / "sst"
"""Stored results committed with the project."""

SETTINGS: tuple[tuple[str, str, str], ...] = tuple(
    (kind, head, variant) for variant in SST_VARIANTS for kind in ("SST2", "SST5") for head in ("FC", "TC"))
"""All (kind, head, variant) settings of T1, the paper's setting first."""

SLOW_SETTINGS = frozenset(s for s in SETTINGS if s[1] == "TC")
"""Attn-TC has no exact reduction and runs for tens of thousands of epochs (up to an hour on two cores):
the book and ``attnlib run sst`` serve these from storage and train them only when asked to."""


def available_settings(settings: Iterable[tuple[str, str, str]] = SETTINGS,
                       folder: Path = STORE_DIR) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(settings to run, settings skipped): a slow setting is run only when a matching stored run exists."""
    run, skipped = [], []
    for setting in settings:
        stored = stored_hash(*setting, folder=folder) == sst_preset(*setting).config_hash()
        (skipped if setting in SLOW_SETTINGS and not stored else run).append(setting)
    return run, skipped


# --------------------------------------------------------------------------- data


def padded_dataset(dataset: Dataset, length: int = PADDED_LENGTH, pad_id: int = PAD_ID) -> Dataset:
    """The unmasked variant's data: every sentence of every split right-padded with ``$PAD$`` to ``length``.

    ``$PAD$`` then is an ordinary word of the count matrix, so it gets a trainable score and embedding
    and attention starts uniform over all ``length`` positions (spec decision 7, §6.6).
    """
    splits = {}
    for name, corpus in dataset.splits.items():
        if int(corpus.lengths.max()) > length:
            raise ValueError(f"padded_dataset: split {name!r} has a sentence of {int(corpus.lengths.max())} tokens, "
                             f"longer than the padded length {length}")
        sentences = [np.concatenate([s, np.full(length - len(s), pad_id, dtype=np.int64)]) for s in corpus.sentences]
        splits[name] = Corpus(sentences, corpus.labels, corpus.vocab_size)
    return Dataset(dataset.name + "-unmasked", dataset.vocab, dataset.n_classes, splits)


def sst_dataset(config: RunConfig) -> Dataset:
    """The dataset a T1 configuration trains on (masked: the plain sentences; unmasked: padded)."""
    from attnlib.data.sst import load_sst

    data = load_sst(config.data.kind, keep_punctuation=config.data.keep_punctuation)
    return data if config.data.mask_padding else padded_dataset(data)


def mean_length_minus_one(corpus: Corpus, vocab_size: int | None = None) -> np.ndarray:
    """Decision 8: m_w = mean length of the (unpadded) training sentences containing w, minus 1; NaN if none."""
    counts = corpus.counts
    present = (counts > 0).astype(np.float64)
    lengths = corpus.lengths.astype(np.float64)
    n_sentences = np.asarray(present.sum(axis=0)).ravel()
    total = present.T @ lengths
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_sentences > 0, total / np.maximum(n_sentences, 1) - 1.0, np.nan)


def find_sentence(dataset: Dataset, text: str, split: str = "train") -> int:
    """Index of the one sentence of ``split`` whose tokens are ``text.split()``; error if not exactly one."""
    index = {w: i for i, w in enumerate(dataset.vocab)}
    tokens = text.split()
    if any(t not in index for t in tokens):
        raise ValueError(f"find_sentence: {[t for t in tokens if t not in index]} not in the vocabulary")
    target = np.array([index[t] for t in tokens], dtype=np.int64)
    hits = [i for i, s in enumerate(dataset.splits[split].sentences)
            if len(s) >= len(target) and np.array_equal(s[: len(target)], target)
            and (len(s) == len(target) or np.all(s[len(target):] == PAD_ID))]
    if len(hits) != 1:
        raise ValueError(f"find_sentence: expected exactly one {split} sentence {text!r}, found {len(hits)}")
    return hits[0]


# --------------------------------------------------------------------------- F6: purity and occurrence


def word_purity(corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    """occ(u) (sentences containing u) and purity |pos - neg| / (pos + neg) per word (NaN if occ = 0)."""
    present = (corpus.counts > 0).astype(np.float64).tocsc()
    labels = corpus.labels
    pos = np.asarray(present[labels == 1].sum(axis=0)).ravel()
    neg = np.asarray(present[labels == 0].sum(axis=0)).ravel()
    occ = np.asarray(present.sum(axis=0)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        purity = np.where(pos + neg > 0, np.abs(pos - neg) / np.maximum(pos + neg, 1), np.nan)
    return occ, purity


def top_tokens(sentences: Sequence[np.ndarray], scores: np.ndarray) -> np.ndarray:
    """Per sentence, the token with the largest score; ties go to the earliest position (np.argmax)."""
    return np.array([s[int(np.argmax(scores[s]))] for s in sentences], dtype=np.int64)


def attention_shift(corpus: Corpus, scores: np.ndarray, words: Iterable[int],
                    mask_pad: bool = True) -> pd.DataFrame:
    """F6 for one seed: ``scores`` (R, V) over snapshots; for each word u0 the purity Π, the floored
    occurrence Ω (thousands) and the unfloored Ω~ of the top-scored tokens of the sentences with u0."""
    occ, purity = word_purity(corpus)
    rows = []
    sentences = [s[s != PAD_ID] if mask_pad else s for s in corpus.sentences]
    for u0 in words:
        chosen = [s for s in sentences if np.any(s == u0)]
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


# --------------------------------------------------------------------------- one reduced run


def _provenance() -> dict:
    """The environment part of a stored run's JSON (:func:`attnlib.provenance.provenance` plus CPU threads);
    the config hash and seeds are written under their own keys by :func:`train_setting`."""
    import torch

    from attnlib.provenance import provenance

    info = {k: v for k, v in provenance().items() if k not in ("config_hashes", "seeds")}
    return {**info, "cpu_threads": torch.get_num_threads()}


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
    m_w: np.ndarray  # (W,) decision 8
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

    def shift_curves(self) -> pd.DataFrame:
        """F6 as a tidy table with epochs and words (empty for SST5)."""
        if self.shift.empty:
            return self.shift
        df = self.shift.copy()
        df["epoch"] = self.record_epochs[df["snapshot"].to_numpy()]
        df["word"] = [self.word_names[int(np.flatnonzero(self.words == w)[0])] for w in df["word_id"]]
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

    def f7_crossings(self) -> pd.DataFrame:
        """Per seed, the epochs where the weight curves of "powerful" and "best" cross, and who ends ahead."""
        df = self.single_sentence()
        rows = []
        for seed, g in df.groupby("seed"):
            a = g[g.word == "powerful"].set_index("epoch")["weight"]
            b = g[g.word == "best"].set_index("epoch")["weight"]
            crosses = crossing_epochs(a.index.to_numpy()[1:], a.to_numpy()[1:], b.to_numpy()[1:])
            rows.append({"model": self.name, "variant": self.variant, "seed": seed, "crossings": crosses,
                         "first_crossing": crosses[0] if crosses else None,
                         "leader_first": "powerful" if a.iloc[1] > b.iloc[1] else "best",
                         "leader_last": "powerful" if a.iloc[-1] > b.iloc[-1] else "best"})
        return pd.DataFrame(rows)

    # ---- storage

    def save(self, folder: Path = STORE_DIR) -> Path:
        """Write ``<key>.npz`` (compressed; traces in float16) and ``<key>.json`` (provenance) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.key}.npz"
        np.savez_compressed(
            path, loss=self.loss.astype(np.float32), dev_loss=self.dev_loss.astype(np.float32),
            record_epochs=self.record_epochs, test_accuracy_curve=self.test_accuracy_curve.astype(np.float32),
            words=self.words, m_w=self.m_w, scores=self.scores.astype(np.float16), norms=self.norms.astype(np.float16),
            top=self.top, final_test_accuracy=self.final_test_accuracy, stopped_epoch=self.stopped_epoch,
            best_epoch=self.best_epoch, query_norm=self.query_norm, f7_weights=self.f7_weights.astype(np.float16),
            pad_weight=self.pad_weight.astype(np.float32),
            shift=self.shift.to_numpy(np.float64) if not self.shift.empty else np.zeros((0, 0)),
            shift_columns=np.array(list(self.shift.columns)), word_names=np.array(self.word_names))
        meta = {"kind": self.kind, "head": self.head, "variant": self.variant, "seeds": self.seeds,
                "config_hash": self.config.config_hash(), "config": self.config.to_dict(), **self.provenance}
        (folder / f"{self.key}.json").write_text(json.dumps(meta, indent=2, default=list) + "\n")
        return path

    @classmethod
    def load(cls, kind: str, head: str, variant: str, folder: Path = STORE_DIR) -> SSTRun:
        folder = Path(folder)
        key = f"{kind}_{head}_{variant}"
        meta = json.loads((folder / f"{key}.json").read_text())
        z = np.load(folder / f"{key}.npz", allow_pickle=False)
        shift = pd.DataFrame(z["shift"], columns=[str(c) for c in z["shift_columns"]]) if z["shift"].size else pd.DataFrame()
        for col in ("word_id", "snapshot", "seed_index", "seed"):
            if col in shift:
                shift[col] = shift[col].astype(np.int64)
        provenance = {k: v for k, v in meta.items() if k not in ("kind", "head", "variant", "seeds", "config")}
        return cls(kind=kind, head=head, variant=variant, config=sst_preset(kind, head, variant), seeds=meta["seeds"],
                   loss=z["loss"], dev_loss=z["dev_loss"], record_epochs=z["record_epochs"],
                   test_accuracy_curve=z["test_accuracy_curve"], words=z["words"],
                   word_names=[str(w) for w in z["word_names"]], m_w=z["m_w"], scores=z["scores"].astype(np.float32),
                   norms=z["norms"].astype(np.float32), top=z["top"], final_test_accuracy=z["final_test_accuracy"],
                   stopped_epoch=z["stopped_epoch"], best_epoch=z["best_epoch"], query_norm=z["query_norm"],
                   shift=shift, f7_weights=z["f7_weights"].astype(np.float32), provenance=provenance,
                   source="stored",
                   pad_weight=z["pad_weight"] if "pad_weight" in z.files else np.zeros((0, 0), np.float32))


def reduce_run(result, config: RunConfig, kind: str, head: str, variant: str, dataset: Dataset,
               n_top: int = N_TOP) -> SSTRun:
    """Keep what the figures need from a :class:`~attnlib.train.TrainResult` that traced every word."""
    train_corpus = dataset.train
    vocab = dataset.vocab
    index = {w: i for i, w in enumerate(vocab)}
    S = len(result.seeds)
    stopped = np.asarray(result.stopped_epoch)
    rec = np.asarray(result.record_epochs)
    all_scores = result.traced_scores  # (R, S, V)
    if all_scores.shape[-1] != len(vocab):
        raise ValueError("reduce_run: the run must trace every word (trace_words = all vocabulary ids)")
    top = np.zeros((S, n_top), dtype=np.int64)
    for k in range(S):
        last = int(np.searchsorted(rec, stopped[k], side="right") - 1)
        s = all_scores[last, k].astype(np.float64).copy()
        if config.data.mask_padding:
            s[PAD_ID] = -np.inf
        top[k] = np.argsort(-s, kind="stable")[:n_top]
    keep = set(top.ravel().tolist()) | {PAD_ID}
    shift = pd.DataFrame()
    f7 = np.zeros((0, 0, 0), dtype=np.float32)
    if kind == "SST2":
        f6_ids = [index[w] for w in F6_WORDS if w in index]
        f7_ids = [index[w] for w in F7_SENTENCE.split()]
        keep |= set(f6_ids) | set(f7_ids)
        frames = []
        for k in range(S):
            df = attention_shift(train_corpus, all_scores[:, k], f6_ids, mask_pad=config.data.mask_padding)
            df.insert(0, "seed_index", k)
            df.insert(1, "seed", result.seeds[k])
            frames.append(df)
        shift = pd.concat(frames, ignore_index=True)
        sentence = np.array(f7_ids)
        find_sentence(dataset, F7_SENTENCE)  # exactly one match, or an error
        f7 = sentence_weights(all_scores, sentence).astype(np.float32)  # over its 12 real tokens
    words = np.array(sorted(keep), dtype=np.int64)
    m_w = mean_length_minus_one(load_unpadded(dataset).train)[words]
    return SSTRun(kind=kind, head=head, variant=variant, config=config, seeds=list(result.seeds),
                  loss=result.loss, dev_loss=result.dev_loss, record_epochs=rec,
                  test_accuracy_curve=result.test_accuracy, words=words, word_names=[vocab[i] for i in words],
                  m_w=m_w, scores=all_scores[:, :, words], norms=result.traced_norms[:, :, words], top=top,
                  final_test_accuracy=result.final_test_accuracy, stopped_epoch=stopped,
                  best_epoch=np.asarray(result.best_epoch), query_norm=result.query_norm, shift=shift, f7_weights=f7,
                  pad_weight=np.zeros((0, 0), np.float32) if config.data.mask_padding
                  else padding_attention(train_corpus, all_scores))


def with_first_step(run: SSTRun, dataset: Dataset | None = None) -> SSTRun:
    """Insert the snapshot after step 1 (spec §2.6, F6: "the first plotted snapshot is the one after step 1").

    The training loop records every P epochs; one extra gradient step from the same initialisation
    (deterministic, identical to the run's first step) gives the scores of every word at t = 1.
    """
    from attnlib.train import train

    if 1 in set(np.asarray(run.record_epochs).tolist()):
        return run
    dataset = dataset or sst_dataset(run.config)
    short = run.config.replace(train={"epochs": 1, "record_every": 1})
    r = train(short.model, short.train, [dataset] * len(run.seeds), list(run.seeds),
              trace_words=np.arange(len(dataset.vocab)), quiet=True)
    at = 1 if len(run.record_epochs) and run.record_epochs[0] == 0 else 0
    all1 = r.traced_scores[1]  # (S, V)
    run.record_epochs = np.insert(run.record_epochs, at, 1)
    run.scores = np.insert(run.scores, at, all1[:, run.words], axis=0)
    run.norms = np.insert(run.norms, at, r.traced_norms[1][:, run.words], axis=0)
    run.test_accuracy_curve = np.insert(run.test_accuracy_curve, at, r.test_accuracy[1], axis=0)
    if run.f7_weights.size:
        index = {w: i for i, w in enumerate(dataset.vocab)}
        sentence = np.array([index[w] for w in F7_SENTENCE.split()])
        run.f7_weights = np.insert(run.f7_weights, at, sentence_weights(all1, sentence), axis=0)
    if run.pad_weight.size:
        run.pad_weight = np.insert(run.pad_weight, at, padding_attention(dataset.train, all1[None])[0], axis=0)
    if not run.shift.empty:
        shift = run.shift.copy()
        shift.loc[shift.snapshot >= at, "snapshot"] += 1
        f6_ids = sorted(set(shift.word_id.astype(int)), key=list(shift.word_id.astype(int)).index)
        frames = [shift]
        for k, seed in enumerate(run.seeds):
            df = attention_shift(dataset.train, all1[k][None], f6_ids, mask_pad=run.config.data.mask_padding)
            df["snapshot"] = at
            df.insert(0, "seed_index", k)
            df.insert(1, "seed", seed)
            frames.append(df)
        run.shift = (pd.concat(frames, ignore_index=True).sort_values(["seed_index", "word_id", "snapshot"], kind="stable")
                     .reset_index(drop=True))[shift.columns]
    return run


def load_unpadded(dataset: Dataset) -> Dataset:
    """The dataset with trailing ``$PAD$`` tokens removed (identity for masked data)."""
    if not dataset.name.endswith("-unmasked"):
        return dataset
    splits = {n: Corpus([s[s != PAD_ID] for s in c.sentences], c.labels, c.vocab_size) for n, c in dataset.splits.items()}
    return Dataset(dataset.name[: -len("-unmasked")], dataset.vocab, dataset.n_classes, splits)


def train_setting(kind: str, head: str, variant: str, seeds: Sequence[int] = SST_SEEDS, quiet: bool = True,
                  config: RunConfig | None = None, dataset: Dataset | None = None) -> SSTRun:
    """Train one setting (all seeds batched), tracing every word every P epochs, and reduce it."""
    from attnlib.train import train

    config = config or sst_preset(kind, head, variant)
    dataset = dataset or sst_dataset(config)
    start = time.perf_counter()
    result = train(config.model, config.train, [dataset] * len(seeds), list(seeds),
                   trace_words=np.arange(len(dataset.vocab)), quiet=quiet)
    wall = time.perf_counter() - start
    run = reduce_run(result, config, kind, head, variant, dataset)
    run = with_first_step(run, dataset)
    run.provenance = {"config_hash": config.config_hash(), **_provenance(), "wall_time_s": round(wall, 1),
                      "seeds": list(seeds), "dataset_fingerprint": dataset.fingerprint(),
                      "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return run


def stored_hash(kind: str, head: str, variant: str, folder: Path = STORE_DIR) -> str | None:
    """The config hash recorded with a stored run, or None if there is none."""
    path = Path(folder) / f"{kind}_{head}_{variant}.json"
    if not path.is_file() or not path.with_suffix(".npz").is_file():
        return None
    return json.loads(path.read_text()).get("config_hash")


def load_or_train(kind: str, head: str, variant: str, seeds: Sequence[int] = SST_SEEDS,
                  folder: Path | None = STORE_DIR, retrain: Iterable[tuple[str, str, str]] = (),
                  quiet: bool = True) -> SSTRun:
    """Serve the stored run when its config hash and seeds match the current preset, else retrain.

    Settings listed in ``retrain`` are always retrained.
    """
    config = sst_preset(kind, head, variant)
    if folder is not None and (kind, head, variant) not in set(retrain):
        if stored_hash(kind, head, variant, folder) == config.config_hash():
            run = SSTRun.load(kind, head, variant, folder)
            if list(run.seeds) == list(seeds):
                return run
    return train_setting(kind, head, variant, seeds, quiet=quiet, config=config)


def verify_stored(kind: str, head: str, variant: str, folder: Path = STORE_DIR, epochs: int = VERIFY_EPOCHS,
                  rtol: float = 1e-4) -> dict:
    """Retrain the first ``epochs`` epochs of a stored run's first seed and compare the training loss per epoch."""
    from attnlib.train import train

    run = SSTRun.load(kind, head, variant, folder)
    config = sst_preset(kind, head, variant)
    if run.provenance.get("config_hash") != config.config_hash():
        raise ValueError(f"stored {run.key} has config hash {run.provenance.get('config_hash')}, "
                         f"the preset has {config.config_hash()}")
    dataset = sst_dataset(config)
    short = config.replace(train={"epochs": epochs})
    result = train(short.model, short.train, [dataset], [run.seeds[0]], quiet=True)
    n = min(epochs + 1, int(run.stopped_epoch[0]) + 1)
    fresh, stored = result.loss[:n, 0], run.loss[:n, 0]
    rel = float(np.max(np.abs(fresh - stored) / np.abs(stored)))
    return {"setting": run.key, "epochs_compared": n, "max_rel_diff": rel, "ok": bool(rel <= rtol)}


# --------------------------------------------------------------------------- all settings


@dataclass
class SSTResult:
    """T1 (+ variants), F5, F6 and F7 over several settings."""

    runs: dict[tuple[str, str, str], SSTRun]

    def table(self) -> pd.DataFrame:
        """T1: per setting mean ± std (and min, max) of test accuracy in %, epochs, beside the paper."""
        rows = []
        for (kind, head, variant), run in self.runs.items():
            ps = run.per_seed()
            acc = 100 * ps["test_accuracy"]
            paper_value = 100 * paper.SST_TEST_ACCURACY[(kind, HEADS[head])]
            rows.append({"dataset": kind, "model": HEADS[head], "variant": variant, "seeds": len(ps),
                         "test_mean": acc.mean(), "test_std": acc.std(ddof=1) if len(ps) > 1 else 0.0,
                         "test_min": acc.min(), "test_max": acc.max(), "paper": paper_value,
                         "diff": acc.mean() - paper_value, "within_2": bool(abs(acc.mean() - paper_value) <= 2.0),
                         "best_epoch_mean": ps["best_epoch"].mean(), "stopped_epoch_mean": ps["stopped_epoch"].mean(),
                         "hit_cap": bool(ps["hit_cap"].any()), "source": run.source,
                         "wall_time_s": run.provenance.get("wall_time_s")})
        return pd.DataFrame(rows)

    def per_seed(self) -> pd.DataFrame:
        return pd.concat([r.per_seed() for r in self.runs.values()], ignore_index=True)

    def metrics(self) -> dict:
        """``SST2.Attn-FC.test_accuracy`` (0-1, mean over seeds), ``.stopped_epoch``, ``.best_epoch``; variants suffixed."""
        out = {}
        for (kind, head, variant), run in self.runs.items():
            suffix = "" if variant == "default" else f".{variant}"
            base = f"{kind}.{HEADS[head]}"
            out[f"{base}.test_accuracy{suffix}"] = float(np.mean(run.final_test_accuracy))
            out[f"{base}.stopped_epoch{suffix}"] = float(np.mean(run.stopped_epoch))
            out[f"{base}.best_epoch{suffix}"] = float(np.mean(run.best_epoch))
        return out

    def provenance(self) -> dict:
        """Config hash per setting (``SST2_FC_default``, ...), the seeds and this process's environment.

        A stored run keeps the provenance of the process that trained it in ``run.provenance``.
        """
        from attnlib.provenance import provenance

        seeds = sorted({int(s) for run in self.runs.values() for s in run.seeds})
        return provenance({run.key: run.config.config_hash() for run in self.runs.values()}, seeds)

    def f6_checks(self) -> pd.DataFrame:
        """Per SST2 run and seed and traced word: Π(last) - Π(first) >= 0.3 and Ω~(last) < Ω~(first)."""
        rows = []
        for run in self.runs.values():
            df = run.shift_curves()
            if df.empty:
                continue
            for (seed, word), g in df.groupby(["seed", "word"]):
                g = g.sort_values("epoch")
                g = g[g.epoch >= 1]
                first, last = g.iloc[0], g.iloc[-1]
                rows.append({"model": run.name, "variant": run.variant, "seed": seed, "word": word,
                             "first_epoch": int(first.epoch), "last_epoch": int(last.epoch),
                             "purity_first": first.purity, "purity_last": last.purity,
                             "occ_first": first.occurrence_unfloored, "occ_last": last.occurrence_unfloored,
                             "pass": bool(last.purity - first.purity >= 0.3
                                          and last.occurrence_unfloored < first.occurrence_unfloored)})
        return pd.DataFrame(rows)


def run_sst(settings: Iterable[tuple[str, str, str]] = SETTINGS, seeds: Sequence[int] = SST_SEEDS,
            folder: Path | None = STORE_DIR, retrain: Iterable[tuple[str, str, str]] = (),
            quiet: bool = True, n_jobs: int | None = None) -> SSTResult:
    """Every setting, served from storage when it matches (see :func:`load_or_train`), else retrained.

    The settings are independent tasks of :func:`attnlib.sweep.sweep`: ``n_jobs`` local workers, or a
    Dask/Ray cluster through joblib's backend context; each setting's seeds still train in one batched run.
    """
    from attnlib.sweep import sweep

    settings = [tuple(s) for s in settings]
    runs = sweep(load_or_train, settings, n_jobs=n_jobs, seeds=tuple(seeds), folder=folder,
                 retrain=tuple(tuple(r) for r in retrain), quiet=quiet)
    return SSTResult(dict(zip(settings, runs)))
