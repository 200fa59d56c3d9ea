"""The seeded topic-word generator of the paper's synthetic experiments.

Word ids: topic word j of topic y has id ``y * words_per_topic + j``; the non-topic words follow.
Each sentence is its topic word followed by m non-topic words drawn uniformly with replacement.
"""

from __future__ import annotations

import numpy as np

from attnlib.config import SyntheticDataConfig
from attnlib.data.corpus import Corpus, Dataset


def generate_synthetic(config: SyntheticDataConfig, seed: int) -> Dataset:
    """Draw ``n_train + n_test`` sentences; the first ``n_train`` form the training split."""
    rng = np.random.default_rng([seed, 0])
    n_topic_words = config.n_topics * config.words_per_topic
    n_sentences = config.n_train + config.n_test
    labels = rng.integers(0, config.n_topics, size=n_sentences)
    topic_words = labels * config.words_per_topic + rng.integers(0, config.words_per_topic, size=n_sentences)
    if config.m_range is None:
        sizes = np.full(n_sentences, config.m)
    else:
        sizes = rng.integers(config.m_range[0], config.m_range[1] + 1, size=n_sentences)
    others = n_topic_words + rng.integers(0, config.n_nontopic, size=int(sizes.sum()))
    bodies = np.split(others, np.cumsum(sizes)[:-1])
    sentences = [np.concatenate(([t], body)).astype(np.int64) for t, body in zip(topic_words, bodies)]

    vocab = [f"topic{t}.{j}" for t in range(config.n_topics) for j in range(config.words_per_topic)]
    vocab += [f"w{i:04d}" for i in range(config.n_nontopic)]
    n_train = config.n_train
    splits = {
        "train": Corpus(sentences[:n_train], labels[:n_train], len(vocab)),
        "test": Corpus(sentences[n_train:], labels[n_train:], len(vocab)),
    }
    topic_of_word = {t * config.words_per_topic + j: t for t in range(config.n_topics) for j in range(config.words_per_topic)}
    return Dataset("synthetic", vocab, config.n_topics, splits, topic_of_word)
