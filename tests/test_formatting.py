"""The helpers of attnlib.formatting: the paper's T1 layout, the binomial standard error, book tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from attnlib.formatting import accuracy_standard_error, book_table, listing, t1_paper_layout


def _table() -> pd.DataFrame:
    rows = []
    for kind, model, mean, std, paper in (("SST2", "Attn-FC", 80.5, 0.1, 76.68), ("SST2", "Attn-TC", 79.0, 0.4, 79.59),
                                          ("SST5", "Attn-FC", 39.0, 0.2, 38.49)):
        rows.append({"dataset": kind, "model": model, "variant": "default", "test_mean": mean, "test_std": std,
                     "paper": paper, "diff": mean - paper})
    rows.append({"dataset": "SST2", "model": "Attn-FC", "variant": "code", "test_mean": 10.0, "test_std": 0.0,
                 "paper": 76.68, "diff": 10.0 - 76.68})
    return pd.DataFrame(rows)


def test_t1_layout_rows_are_datasets_and_columns_models():
    out = t1_paper_layout(_table(), tolerance=2.0)
    assert list(out.dataset) == ["SST2", "SST5"]
    assert list(out.columns) == ["dataset", "Attn-FC: ours (%)", "Attn-FC: paper (%)", "Attn-TC: ours (%)",
                                 "Attn-TC: paper (%)"]
    sst2 = out.set_index("dataset").loc["SST2"]
    assert sst2["Attn-FC: ours (%)"] == "80.50 ± 0.10 (+3.82, outside ±2)"
    assert sst2["Attn-FC: paper (%)"] == "76.68"
    assert sst2["Attn-TC: ours (%)"] == "79.00 ± 0.40 (-0.59, within ±2)"


def test_t1_layout_uses_only_the_requested_variant_and_marks_missing_cells():
    out = t1_paper_layout(_table(), tolerance=2.0).set_index("dataset")
    assert "10.00" not in out.loc["SST2", "Attn-FC: ours (%)"]  # the `code` row is not the paper's setting
    assert out.loc["SST5", "Attn-TC: ours (%)"] == "not run"
    code = t1_paper_layout(_table(), tolerance=2.0, variant="code").set_index("dataset")
    assert code.loc["SST2", "Attn-FC: ours (%)"].startswith("10.00 ± 0.00 (-66.68, outside")


def test_t1_layout_marks_the_misses_when_asked():
    out = t1_paper_layout(_table(), tolerance=2.0, mark_misses=True).set_index("dataset")
    number = '<span class="attnlib-nowrap">{}</span>'.format  # a line never breaks inside a number
    assert out.loc["SST2", "Attn-FC: ours (%)"] == f"✗ **{number('80.50')} {number('± 0.10')} {number('(+3.82)')}**"
    assert out.loc["SST2", "Attn-TC: ours (%)"] == f"{number('79.00')} {number('± 0.40')} {number('(-0.59)')}"  # unmarked
    assert out.loc["SST2", "Attn-FC: paper (%)"] == number("76.68")


def test_verdict_badge_names_the_verdict_in_words():
    from attnlib.formatting import verdict_badge
    assert verdict_badge("reproduced") == '<span class="attnlib-verdict attnlib-verdict-holds">holds</span>'
    assert ">fails<" in verdict_badge("not reproduced") and ">partly<" in verdict_badge("partly")
    assert "attnlib-verdict-reported" in verdict_badge("something new")


def test_a_row_misses_by_failing_or_by_a_strict_criterion():
    from attnlib.formatting import row_finding
    assert row_finding(3, 3, 3) == "holds" and row_finding(4, 4, 5) == "holds"  # all but one seed asked
    assert row_finding(1, 3, 3) == "strict"  # some seeds show it: a single run could
    assert row_finding(0, 1, 1) == "fails" and row_finding(0, 3, 3) == "fails"  # no unit shows it
    assert row_finding(0, 0, 0) == "reported"


def _rows(*rows):
    return pd.DataFrame([dict(zip(("id", "claim", "passed", "needed", "total"), r)) for r in rows])


def test_claim_findings_sum_up_an_experiments_misses():
    from attnlib.formatting import claim_findings
    rows = _rows(("F2", "start", 14, 15, 15), ("F2", "first", 4, 5, 5), ("T1", "cell", 0, 1, 1),
                 ("T1", "order", 0, 2, 2), ("T1", "other cell", 1, 1, 1))
    out = claim_findings(rows, {"C": ("two experiments", ("F2", "T1"))}).iloc[0]
    assert out.finding == "fails in part" and out.misses == "F2 strict (2 tests), T1 fails (2 tests)"


def test_claim_findings_tell_a_failing_claim_from_a_strict_criterion():
    from attnlib.formatting import claim_findings, findings_markdown
    claims = {"A": ("all hold", ("F1", "F4")), "B": ("some seeds", ("F1", "F5")),
              "C": ("one part fails", ("F4", "T1")), "D": ("every part fails", ("T1",)),
              "E": ("nothing gated", ("F7",)), "G": ("nothing ran", ("N9",))}
    rows = _rows(("F1", "identity", 15, 15, 15), ("F4", "ablation", 10, 10, 10), ("F5", "SST2 gap", 1, 3, 3),
                 ("T1", "SST2 Attn-FC accuracy", 0, 1, 1), ("F7", "crossing", 0, 0, 0))
    out = claim_findings(rows, claims).set_index("claim")
    assert out.finding.to_dict() == {"A": "holds", "B": "strict", "C": "fails in part", "D": "fails",
                                     "E": "reported", "G": "not run"}
    assert out.loc["B", "misses"] == "F5 strict" and out.loc["A", "misses"] == ""
    assert out.loc["B", "missed_rows"] == "F5 SST2 gap (met in 1 of 3)"
    assert out.loc["C", "missed_rows"] == "T1 SST2 Attn-FC accuracy (met in 0 of 1)" and out.loc["C", "ids"] == "F4, T1"
    text = findings_markdown(out.reset_index())
    assert ">criterion strict</span> **B.** some seeds (F1, F5). Missed: F5 strict." in text
    assert 'attnlib-verdict-fails">fails in part<' in text and "**G.** nothing ran." in text
    assert "**D.** every part fails (T1).\n" in text  # one experiment: the badge says which fails


def test_accuracy_standard_error_is_binomial():
    assert accuracy_standard_error(0.5, 100) == pytest.approx(0.05)
    assert accuracy_standard_error(0.8, 1821) == pytest.approx(np.sqrt(0.16 / 1821))
    assert accuracy_standard_error(1.0, 10) == 0.0
    with pytest.raises(ValueError):
        accuracy_standard_error(80.0, 100)
    with pytest.raises(ValueError):
        accuracy_standard_error(0.5, 0)


def test_combine_verdicts_follows_the_scorecard_rule():
    from attnlib.formatting import combine_verdicts
    assert combine_verdicts(["reported", "reported"]) == "reported"
    assert combine_verdicts(["reproduced", "reported", "reproduced"]) == "reproduced"
    assert combine_verdicts(["not reproduced", "reported"]) == "not reproduced"
    assert combine_verdicts(["reproduced", "not reproduced"]) == "partly"
    assert combine_verdicts(["partly"]) == "partly"


def test_every_scorecard_id_belongs_to_a_claim():
    from attnlib.experiments import EXPERIMENTS
    from attnlib.formatting import CLAIMS
    claimed = {i for _, ids in CLAIMS.values() for i in ids}
    paper_ids = {i for name in ("synthetic", "ablation", "sst") for i in EXPERIMENTS[name].claims}  # the paper's
    assert claimed <= paper_ids
    assert paper_ids - claimed == {"N5"}  # the keys-parallel fact is the engine's, no claim


def _raw_table() -> pd.DataFrame:
    return pd.DataFrame({"sen_max_abs_residual": [0.0123456, 2e-6], "reproduced": [True, False],
                         "epochs": [12000, 7], "note": ["a", None], "gap": [np.nan, 1.5]},
                        index=[5, 9])


def test_headings_rounding_and_words() -> None:
    shown = book_table(_raw_table(), columns={"sen_max_abs_residual": "largest |residual|", "reproduced": "verdict",
                                          "epochs": "epochs", "gap": "gap (points)"},
                       digits={"sen_max_abs_residual": 4, "gap": 1},
                       verdicts={"reproduced": ("reproduced", "not reproduced")})
    data = shown.data
    assert list(data.columns) == ["largest |residual|", "verdict", "epochs", "gap (points)"]
    assert data["largest |residual|"].tolist() == ["0.0123", "2.0e-06"]  # a tiny value is not shown as 0.0000
    assert data["verdict"].tolist() == ["reproduced", "not reproduced"]
    assert data["epochs"].tolist() == ["12,000", "7"]
    assert data["gap (points)"].tolist() == ["–", "1.5"]


def test_no_index_column_in_the_html() -> None:
    html = book_table(_raw_table()).to_html()
    assert "sen max abs residual" in html and "yes" in html and "no" in html
    assert "<th" in html
    # the index (5, 9) is hidden: no row heading cells
    assert 'class="row_heading' not in html
    assert ">5<" not in html and ">9<" not in html


def test_small_losses_get_a_fourth_decimal() -> None:
    from attnlib.formatting import SMALL_LOSS, loss_digits, mean_spread

    assert loss_digits([SMALL_LOSS / 2, SMALL_LOSS / 3]) == 4 and loss_digits([SMALL_LOSS, 0.0]) == 3
    assert mean_spread([0.0004], loss_digits([0.0004])) == "0.0004"  # not 0.000


def test_every_paper_id_is_mapped_once_to_the_paper():
    from attnlib import paper
    from attnlib.scorecard import claim_ids
    paper_ids = [i for i in claim_ids() if i[0] in "FT"]  # figures and the table; N*, X* are the book's own
    assert list(paper.PAPER_ITEMS) == paper_ids  # the scorecard's order is the paper's
    assert paper.paper_label("T1") == "Table 1"
    assert paper.paper_label("F3").startswith("the figure of the distributions of final scores")
    assert paper.paper_label("F3").endswith(", in Section 5") and paper.paper_short_label("T1") == "Table 1"
    assert paper.paper_short_label("F2") == "figure: loss curves, synthetic"
    assert paper.in_paper_sentence(("T1", "F7")) == ('T1 is Table 1. F7 is a figure of its Section 5: F7 "powerful" '
                                                     'against "best" in one sentence (SST2).')
    assert paper.in_paper_sentence(("F2", "F3")).startswith("F2 and F3 are figures of its Section 5: F2 the training")
    assert paper.paper_readings("T1") == {"SST_TEST_ACCURACY": paper.SST_TEST_ACCURACY}
    table = paper.paper_items_table().set_index("id")
    assert table.loc["T1", "readings"] == 4 and table.loc["F7", "readings"] == "none, a shape"
    assert table.loc["F4", "chapter"] == "ablation" and table.loc["F4", "in the paper"] == "a figure, number not checked"


def test_listing_marks_and_joins_items_and_says_when_there_is_none() -> None:
    assert listing(["SST2_FC_default", "SST5_TC_code"], "`") == "`SST2_FC_default`, `SST5_TC_code`"
    assert listing((w for w in ("bad", "too")), "*", " and ") == "*bad* and *too*"
    assert listing([3, 4.5], sep="; ") == "3; 4.5"
    assert listing([]) == "none"
    assert listing(iter(()), "*", empty="no word") == "no word"


def test_markdown_table_rounds_floats_and_keeps_the_rest():
    from attnlib.formatting import markdown_table
    table = pd.DataFrame({"name": ["a", "b"], "share|w": [0.123456, float("nan")], "count": [3, 40],
                          "holds": [True, False]})
    lines = markdown_table(table, digits=3).splitlines()
    assert "share\\|w" in lines[0]  # a pipe in a name does not end the cell
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in (lines[2], lines[3])]
    assert cells[0] == ["a", "0.123", "3", "yes"]
    assert cells[1] == ["b", "", "40", "no"]  # a missing float is blank


def test_scientific_writes_a_power_of_ten():
    from attnlib.formatting import scientific
    assert scientific(0.000123) == "1.2 × 10<sup>-4</sup>"
    assert scientific(-4567.0, digits=2) == "-4.57 × 10<sup>3</sup>"
