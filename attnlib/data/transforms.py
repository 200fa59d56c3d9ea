"""Transforms of a tokenised SST corpus that the SST experiments train on or summarise it by.

Padding for the unmasked variant (and undoing it), the mean sentence length per word (the ``m_w`` of
the identity on the words that attract attention), each word's occurrence and purity (F6), and
finding one sentence by its text (F7). They depend on the corpus only, never on a trained model.
"""

from __future__ import annotations

import numpy as np

from attnlib.data.corpus import Corpus, Dataset

PAD_ID = 0
"""Vocabulary id of ``$PAD$`` (the SST loader puts it first)."""
PADDED_LENGTH = 52
"""Longest sentence over all splits of both datasets; the unmasked variant pads every sentence to it."""
UNMASKED_SUFFIX = "-unmasked"


def padded_dataset(dataset: Dataset, length: int = PADDED_LENGTH, pad_id: int = PAD_ID) -> Dataset:
    """The unmasked variant's data: every sentence of every split right-padded with ``$PAD$`` to ``length``.

    ``$PAD$`` then is an ordinary word of the count matrix, so it gets a trainable score and embedding
    and attention starts uniform over all ``length`` positions, as in the authors' code, which pads
    without a mask.
    """
    splits = {}
    for name, corpus in dataset.splits.items():
        if int(corpus.lengths.max()) > length:
            raise ValueError(f"padded_dataset: split {name!r} has a sentence of {int(corpus.lengths.max())} tokens, "
                             f"longer than the padded length {length}")
        sentences = [np.concatenate([s, np.full(length - len(s), pad_id, dtype=np.int64)]) for s in corpus.sentences]
        splits[name] = Corpus(sentences, corpus.labels, corpus.vocab_size)
    return Dataset(dataset.name + UNMASKED_SUFFIX, dataset.vocab, dataset.n_classes, splits)


def load_unpadded(dataset: Dataset) -> Dataset:
    """The dataset with trailing ``$PAD$`` tokens removed (identity for masked data)."""
    if not dataset.name.endswith(UNMASKED_SUFFIX):
        return dataset
    splits = {n: Corpus([s[s != PAD_ID] for s in c.sentences], c.labels, c.vocab_size) for n, c in dataset.splits.items()}
    return Dataset(dataset.name[: -len(UNMASKED_SUFFIX)], dataset.vocab, dataset.n_classes, splits)


def mean_length_minus_one(corpus: Corpus, vocab_size: int | None = None) -> np.ndarray:
    """m_w = mean length of the (unpadded) training sentences containing w, minus 1; NaN if none.

    A sentence counts once however often it contains w: m_w is the number of *other* positions that
    compete with one occurrence of w for attention, averaged over the sentences w appears in.
    """
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


def word_purity(corpus: Corpus, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """occ(u) (sentences containing u) and purity (K max_c p_c(u) - 1) / (K - 1) per word, where p_c(u) is the
    share of the sentences containing u that have class c and K the number of classes (NaN if occ = 0).

    Purity is 0 when u's sentences are spread evenly over the classes and 1 when they all have one class;
    with two classes it is |pos - neg| / (pos + neg). ``n_classes`` defaults to the largest label + 1 (at least 2).
    """
    present = (corpus.counts > 0).astype(np.float64).tocsc()
    labels = corpus.labels
    k = max(2, int(labels.max()) + 1 if labels.size else 2) if n_classes is None else int(n_classes)
    per_class = np.stack([np.asarray(present[labels == c].sum(axis=0)).ravel() for c in range(k)])
    occ = np.asarray(present.sum(axis=0)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        purity = np.where(occ > 0, (k * per_class.max(axis=0) / np.maximum(occ, 1) - 1) / (k - 1), np.nan)
    return occ, purity
