"""What the paper reports, in one place, so the book and the checks quote the same values.

"Published" synthetic values are read from the authors' figures (single runs); they are approximate.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

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


@dataclass(frozen=True)
class PaperItem:
    """Where one of the book's experiment IDs sits in the paper :cite:`lu2021dynamics` and what it shows there.

    ``kind`` is "figure" or "table"; ``number`` the paper's own number for it where the book is sure of it
    (T1: the paper's one table, of the four test accuracies quoted in :data:`SST_TEST_ACCURACY`), None where
    it has not been checked against the paper's text (then the item is named by what it shows, in the
    paper's Section 5, never by a guessed number); ``script`` the authors' script that draws it
    :cite:`lu2021code`; ``readings`` the names of the constants of this module that quote or read its values
    (empty: the paper describes a shape and gives no value to stand beside ours); ``chapter`` the book
    chapter that reproduces it; ``short`` a few words for a table cell."""

    kind: str
    number: int | None
    shows: str
    script: str
    readings: tuple[str, ...]
    chapter: str
    short: str


PAPER_SECTION = 5
"""The paper's section with every experiment the book reproduces (the authors' code, README)."""

PAPER_ITEMS: dict[str, PaperItem] = {
    "F1": PaperItem("figure", None, "the SEN curves: each topic word's score against its embedding norm, synthetic "
                    "data", "perform_synthetic_analysis.py",
                    ("SYNTHETIC_FINAL_TOPIC_SCORE", "SYNTHETIC_FINAL_TOPIC_NORM"), "synthetic",
                    "SEN curves, synthetic"),
    "F2": PaperItem("figure", None, "the training-loss curves, synthetic data", "perform_synthetic_analysis.py",
                    ("SYNTHETIC_T01", "SYNTHETIC_PLATEAU_END", "SYNTHETIC_TEST_ACCURACY"), "synthetic",
                    "loss curves, synthetic"),
    "F3": PaperItem("figure", None, "the distributions of final scores and norms, topic against non-topic words",
                    "perform_synthetic_analysis.py", ("SYNTHETIC_NONTOPIC_SCORE_RANGE",), "synthetic",
                    "score and norm distributions"),
    "F4": PaperItem("figure", None, "the ablation: keys frozen (KF), embeddings frozen (EF)", "ablation_analysis.py",
                    ("ABLATION_FINAL", "ABLATION_NEAR_ZERO_EPOCH"), "ablation", "ablation"),
    "T1": PaperItem("table", 1, "the test accuracies on SST2 and SST5",
                    "perform_sst2_analysis.py, perform_sst5_analysis.py", ("SST_TEST_ACCURACY",), "sst",
                    "SST test accuracies"),
    "F5": PaperItem("figure", None, "the SEN curves of the top-scored SST words",
                    "perform_sst2_analysis.py, perform_sst5_analysis.py", (), "sst", "SEN curves, SST"),
    "F6": PaperItem("figure", None, "the purity and occurrence of the top-scored words over training (SST2)",
                    "perform_sst2_analysis.py", ("SST_F6_WORDS",), "sst",
                    "purity and occurrence, SST2"),
    "F7": PaperItem("figure", None, "\"powerful\" against \"best\" in one sentence (SST2)", "perform_sst2_analysis.py",
                    (), "sst", "one sentence, SST2"),
}
"""The paper's figures and table, by the book's experiment ID, in the paper's order: the one place the book
maps its IDs to the paper (the criteria page's table, the scorecard and the chapters' captions read it)."""


def paper_label(id_: str) -> str:
    """How the book names ``id_``'s place in the paper: "Table 1" where the number is known, otherwise "the
    figure of <what it shows>, in Section 5". Raises KeyError for an ID that is not one of the paper's."""
    item = PAPER_ITEMS[id_]
    if item.number is not None:
        return f"{item.kind.capitalize()} {item.number}"
    return f"the {item.kind} of {item.shows}, in Section {PAPER_SECTION}"


def paper_short_label(id_: str) -> str:
    """:func:`paper_label` for a table cell: "Table 1", or "figure: <a few words>" without the section."""
    item = PAPER_ITEMS[id_]
    return f"{item.kind.capitalize()} {item.number}" if item.number is not None else f"{item.kind}: {item.short}"


def in_paper_sentence(ids: tuple[str, ...]) -> str:
    """Where the ``ids`` sit in the paper, in sentences: each numbered one by its number, the others together,
    by what they show: "T1 is Table 1. F5 and F7 are figures of its Section 5: F5 the ..., F7 the ..."."""
    parts = [f"{id_} is {paper_label(id_)}." for id_ in ids if PAPER_ITEMS[id_].number is not None]
    rest = [id_ for id_ in ids if PAPER_ITEMS[id_].number is None]
    if rest:
        names = rest[0] if len(rest) == 1 else ", ".join(rest[:-1]) + " and " + rest[-1]
        kinds = sorted({PAPER_ITEMS[id_].kind for id_ in rest})
        what = f"are {' and '.join(kind + 's' for kind in kinds)}" if len(rest) > 1 else f"is a {kinds[0]}"
        parts.append(f"{names} {what} of its Section {PAPER_SECTION}: "
                     + "; ".join(f"{id_} {PAPER_ITEMS[id_].shows}" for id_ in rest) + ".")
    return " ".join(parts)


def paper_readings(id_: str) -> dict[str, object]:
    """The values the paper prints or that are read off its figure ``id_``, by constant name (empty where
    the paper gives only a shape)."""
    return {name: globals()[name] for name in PAPER_ITEMS[id_].readings}


def paper_items_table() -> pd.DataFrame:
    """One row per ID: ``id``, ``in the paper`` (:func:`paper_label`), ``shows``, ``script``, ``readings``
    (how many values the book compares with: "none, a shape" where the paper gives none) and ``chapter``."""
    rows = []
    for id_, item in PAPER_ITEMS.items():
        readings = sum(_count(value) for value in paper_readings(id_).values())
        rows.append({"id": id_, "in the paper": paper_label(id_) if item.number is not None else
                     f"a {item.kind}, number not checked", "shows": item.shows, "script": item.script,
                     "readings": readings if readings else "none, a shape", "chapter": item.chapter})
    return pd.DataFrame(rows)


def _count(value: object) -> int:
    """How many numbers ``value`` holds (a number, a tuple of them, a dict of numbers or of dicts)."""
    if isinstance(value, dict):
        return sum(_count(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return sum(_count(v) for v in value)
    return 1 if isinstance(value, (int, float)) else 0
