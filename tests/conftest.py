"""Shared fixtures: small random corpora and the paper's synthetic preset."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest

from attnlib.data import Corpus, Dataset

_CACHE_DIR = tempfile.mkdtemp(prefix="attnlib-test-cache-")


def pytest_configure(config: pytest.Config) -> None:
    """Point the result cache at a fresh folder for this session (child processes inherit it), so
    tests never read or fill the user's cache."""
    os.environ["ATTNLIB_CACHE_DIR"] = _CACHE_DIR
    os.environ.pop("ATTNLIB_CACHE", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)



def random_dataset(seed: int, vocab_size: int = 30, n_classes: int = 3, n_train: int = 12, n_test: int = 5,
                   max_len: int = 8) -> Dataset:
    """Sentences of random length (1..max_len) over a small vocabulary, with repeats."""
    rng = np.random.default_rng(seed)

    def corpus(n: int) -> Corpus:
        sentences = [rng.integers(0, vocab_size, size=rng.integers(1, max_len + 1)) for _ in range(n)]
        return Corpus(sentences, rng.integers(0, n_classes, size=n), vocab_size)

    vocab = [f"w{i}" for i in range(vocab_size)]
    return Dataset("random", vocab, n_classes, {"train": corpus(n_train), "test": corpus(n_test)})


@pytest.fixture
def tiny_datasets() -> list[Dataset]:
    return [random_dataset(11), random_dataset(12)]
