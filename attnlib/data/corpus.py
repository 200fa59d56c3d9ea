"""A tokenised corpus as a sparse sentence x vocabulary count matrix, plus labels and vocabulary.

The model ignores word order, so a sentence is fully described by how often each word occurs in
it; the count matrix is all the training engine needs (design: "a bag of words is a sparse matrix").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass
class Corpus:
    """Sentences (token-id arrays) with labels over a shared vocabulary of ``vocab_size`` words."""

    sentences: list[np.ndarray]
    labels: np.ndarray
    vocab_size: int

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.sentences) != len(self.labels):
            raise ValueError(f"Corpus: {len(self.sentences)} sentences but {len(self.labels)} labels")
        for i, sentence in enumerate(self.sentences):
            if len(sentence) == 0:
                raise ValueError(f"Corpus: sentence {i} is empty; every sentence needs at least one token")
            if sentence.min() < 0 or sentence.max() >= self.vocab_size:
                raise ValueError(f"Corpus: sentence {i} has a token id outside [0, {self.vocab_size})")

    def __len__(self) -> int:
        return len(self.sentences)

    @cached_property
    def counts(self) -> sp.csr_matrix:
        """The (sentences x vocab_size) matrix whose entry (i, w) counts word w in sentence i."""
        lengths = np.fromiter((len(s) for s in self.sentences), dtype=np.int64, count=len(self.sentences))
        rows = np.repeat(np.arange(len(self.sentences)), lengths)
        cols = np.concatenate(self.sentences) if self.sentences else np.zeros(0, dtype=np.int64)
        data = np.ones(len(cols), dtype=np.float64)
        matrix = sp.csr_matrix((data, (rows, cols)), shape=(len(self.sentences), self.vocab_size))
        matrix.sum_duplicates()
        return matrix

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(s) for s in self.sentences), dtype=np.int64, count=len(self.sentences))

    def padded(self, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Token ids right-padded to the longest sentence, and the mask (1 = real token)."""
        width = int(self.lengths.max())
        ids = np.full((len(self), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(self), width), dtype=bool)
        for i, sentence in enumerate(self.sentences):
            ids[i, : len(sentence)] = sentence
            mask[i, : len(sentence)] = True
        return ids, mask


@dataclass
class Dataset:
    """Named splits (``train``, ``test``, optionally ``dev``) over one vocabulary."""

    name: str
    vocab: list[str]
    n_classes: int
    splits: dict[str, Corpus]
    topic_of_word: dict[int, int] = field(default_factory=dict)
    """For synthetic data: topic word id -> its topic. Empty for real data."""

    @property
    def train(self) -> Corpus:
        return self.splits["train"]

    @property
    def test(self) -> Corpus:
        return self.splits["test"]

    @property
    def topic_words(self) -> np.ndarray:
        return np.array(sorted(self.topic_of_word), dtype=np.int64)

    def fingerprint(self) -> str:
        """A short hash of every split's token ids and labels: same data, same fingerprint."""
        digest = hashlib.sha256()
        for name in sorted(self.splits):
            corpus = self.splits[name]
            digest.update(name.encode())
            digest.update(corpus.labels.tobytes())
            for sentence in corpus.sentences:
                digest.update(np.asarray(sentence, dtype=np.int64).tobytes())
                digest.update(b"|")
        return digest.hexdigest()[:16]

    def head(self, split: str = "train", n: int = 5) -> pd.DataFrame:
        """The first ``n`` sentences of a split as words, with their labels: a peek at the data."""
        corpus = self.splits[split]
        return pd.DataFrame({
            "label": corpus.labels[:n],
            "sentence": [" ".join(self.vocab[i] for i in sentence) for sentence in corpus.sentences[:n]],
        })
