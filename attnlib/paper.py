"""What the paper reports, in one place, so the book and the checks quote the same values.

"Published" synthetic values are read from the authors' figures (single runs); they are approximate.
"""

from __future__ import annotations

SYNTHETIC_T01 = {"Attn-FC": 1000, "Attn-TC": 2000, "Attn-TL": 3600}
"""First epoch with training loss below 0.1, read from the published loss curves (F2)."""

SYNTHETIC_PLATEAU_END = {"Attn-FC": 400, "Attn-TC": 1400, "Attn-TL": 2100}
"""Epoch at which the published loss curve leaves its initial plateau (F2)."""

SYNTHETIC_FINAL_TOPIC_SCORE = {"Attn-FC": 4.0, "Attn-TC": 3.3, "Attn-TL": 1.0}
"""Final score of the one topic word the authors plot (F1)."""

SYNTHETIC_FINAL_TOPIC_NORM = {"Attn-FC": 3.6, "Attn-TC": 3.1, "Attn-TL": 1.5}
"""Final |q||v| of that topic word (F1)."""

SYNTHETIC_NONTOPIC_SCORE_RANGE = (-0.025, 0.0)
"""All non-topic scores at epoch 5000 lie in this range in the published F3."""

SYNTHETIC_TEST_ACCURACY = 1.0
"""The paper: all three models reach 100.0% test accuracy on the synthetic data."""

SST_TEST_ACCURACY = {
    ("SST2", "Attn-FC"): 0.7668, ("SST2", "Attn-TC"): 0.7959,
    ("SST5", "Attn-FC"): 0.3849, ("SST5", "Attn-TC"): 0.4053,
}
"""Table T1 of the paper."""

SST_F6_WORDS = ("powerful", "stupid", "solid", "suffers", "mess")
"""F6: the five words whose purity and occurrence the paper traces on SST2."""

ABLATION_FINAL = {
    "Attn-FC": {"loss": 0.0, "score": 3.7, "norm": 3.4},
    "Attn-FC-KF": {"loss": 0.55, "score": 0.0, "norm": 9.0},
    "Attn-FC-EF": {"loss": 1.386, "score": 0.1, "norm": 0.3},
    "Attn-TC": {"loss": 0.0, "score": 3.5, "norm": 3.2},
    "Attn-TC-KF": {"loss": 0.05, "score": 0.0, "norm": 6.8},
    "Attn-TC-EF": {"loss": 1.386, "score": -0.3, "norm": 0.3},
}
"""F4, read from the authors' ablation figure (one run, one topic word): training loss, topic-word score and
|q||v| at epoch 6000. The full models' loss is "near 0"; the EF loss is flat at ln 4."""

ABLATION_NEAR_ZERO_EPOCH = {"Attn-FC": 1200, "Attn-TC": 2300}
"""F4: epoch by which the published full-model loss is near 0."""

TREC_PUBLISHED = {"CNN-rand (Kim 2014)": 91.2, "CNN-non-static (Kim 2014)": 93.6}
"""Test accuracy (%) on TREC's six coarse classes (the 500 TREC-10 questions) of two published models: Kim's
convolutional network with randomly initialised word vectors (the closest to our models, which learn their
embeddings from scratch) and with fine-tuned word2vec vectors (Kim 2014, Table 2, column TREC). Not from the
paper this book reproduces, which does not use TREC."""

TREC_PUBLISHED_SOURCE = {"CNN-rand (Kim 2014)": "Kim 2014, Table 2", "CNN-non-static (Kim 2014)": "Kim 2014, Table 2"}
"""Where each of :data:`TREC_PUBLISHED` is reported."""
