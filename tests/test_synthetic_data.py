"""The paper's synthetic topic-word data (K = 4 topics of 2 words each, m = 20 non-topic words per sentence
from 5000): counts, one topic word per sentence, labels, seeding."""

from __future__ import annotations

import numpy as np

from attnlib.config import SyntheticDataConfig
from attnlib.data import generate_synthetic

CONFIG = SyntheticDataConfig()


def test_shapes_and_vocabulary() -> None:
    data = generate_synthetic(CONFIG, seed=0)
    assert len(data.train) == 800 and len(data.test) == 200
    assert len(data.vocab) == 5008 and data.train.counts.shape == (800, 5008)
    assert data.topic_words.tolist() == list(range(8))
    assert data.vocab[0] == "topic0.0" and data.vocab[8].startswith("w")
    assert data.n_classes == 4


def test_one_topic_word_of_the_right_topic_and_m_others() -> None:
    data = generate_synthetic(CONFIG, seed=1)
    for corpus in (data.train, data.test):
        counts = corpus.counts.toarray()
        assert np.all(counts.sum(1) == 21)
        topic_counts = counts[:, :8]
        assert np.all(topic_counts.sum(1) == 1)
        topic_word = topic_counts.argmax(1)
        assert np.all(topic_word // 2 == corpus.labels)
        assert np.all([data.topic_of_word[int(w)] == y for w, y in zip(topic_word, corpus.labels)])


def test_statistics_match_the_paper() -> None:
    """About 100 training sentences per topic word (800 sentences over 8 topic words), about 4% of the
    non-topic words unseen in training ((1 - 1/5000) ** (800 * 20) = e ** -3.2), 200 sentences per label."""
    data = generate_synthetic(CONFIG, seed=2)
    per_topic_word = np.asarray(data.train.counts[:, :8].sum(0)).ravel()
    assert np.all(np.abs(per_topic_word - 100) < 5 * 9.4)
    unseen = (np.asarray(data.train.counts[:, 8:].sum(0)).ravel() == 0).mean()
    assert 0.02 < unseen < 0.07
    # labels are uniform over the 4 topics: 200 sentences each, binomial sd sqrt(800 / 4 * 3 / 4) = 12.2
    per_label = np.bincount(data.train.labels, minlength=4)
    assert len(per_label) == 4 and np.all(np.abs(per_label - 200) < 5 * 12.2)


def test_seeding_is_deterministic() -> None:
    a, b, c = (generate_synthetic(CONFIG, seed=s) for s in (3, 3, 4))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert (a.train.counts != b.train.counts).nnz == 0


def test_variable_m() -> None:
    data = generate_synthetic(SyntheticDataConfig(m_range=(5, 9)), seed=0)
    lengths = data.train.lengths - 1
    assert lengths.min() >= 5 and lengths.max() <= 9 and len(np.unique(lengths)) == 5
