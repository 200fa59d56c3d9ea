"""Book tables: human headings, rounding, verdicts as words, no index column."""

from __future__ import annotations

import numpy as np
import pandas as pd

from attnlib.report import book_table


def _table() -> pd.DataFrame:
    return pd.DataFrame({"sen_max_abs_residual": [0.0123456, 2e-6], "reproduced": [True, False],
                         "epochs": [12000, 7], "note": ["a", None], "gap": [np.nan, 1.5]},
                        index=[5, 9])


def test_headings_rounding_and_words() -> None:
    shown = book_table(_table(), columns={"sen_max_abs_residual": "largest |residual|", "reproduced": "verdict",
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
    html = book_table(_table()).to_html()
    assert "sen max abs residual" in html and "yes" in html and "no" in html
    assert "<th" in html
    # the index (5, 9) is hidden: no row heading cells
    assert 'class="row_heading' not in html
    assert ">5<" not in html and ">9<" not in html
