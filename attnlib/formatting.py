"""Formatting of results for the book and the command line: mean, spread and range over seeds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

SMALL_LOSS = 0.01
"""Losses below this are shown with four decimals instead of three, so that they do not read 0.000."""


def loss_digits(values: Sequence[float] | np.ndarray | pd.Series) -> int:
    """Decimals to show a set of losses with: 4 when the largest is below :data:`SMALL_LOSS`, else 3."""
    return 4 if float(np.max(values)) < SMALL_LOSS else 3


def mean_spread(values: Sequence[float] | np.ndarray | pd.Series, digits: int = 2, scale: float = 1.0) -> str:
    """``mean ± std (min–max)`` over seeds, e.g. ``3.45 ± 0.35 (2.92–3.91)``; a single value is shown alone."""
    v = np.asarray(values, dtype=float) * scale
    if np.isnan(v).any():
        return f"not reached in {int(np.isnan(v).sum())} of {len(v)} seeds"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f} ({v.min():.{digits}f}–{v.max():.{digits}f})"


def mean_range(values: pd.Series, digits: int = 3) -> str:
    """``mean (min–max)`` over seeds for a book table; for an epoch count with NaN for "never", how many
    seeds got there."""
    values = values.astype(float)
    if values.isna().any():
        reached = values.dropna()
        if reached.empty:
            return f"not reached ({len(values)} of {len(values)} seeds)"
        return f"{reached.mean():.0f} ({len(reached)} of {len(values)} seeds; the rest never)"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ({values.min():.{digits}f}–{values.max():.{digits}f})"


def listing(items: Iterable[object], mark: str = "", sep: str = ", ", empty: str = "none") -> str:
    """``items`` as one phrase for the book's text: each set between two ``mark`` (``"`"`` as code, ``"*"`` in
    italics), joined by ``sep``; ``empty`` when there is none (``listing(["a", "b"], "*", " and ")`` is
    ``*a* and *b*``)."""
    return sep.join(f"{mark}{item}{mark}" for item in items) or empty


def markdown_table(table: pd.DataFrame, digits: int = 2) -> str:
    """``table`` as a Markdown table for a chapter's glue (:func:`attnlib.plots.style.glue_md`), without the
    index: floats with ``digits`` decimals (a missing one blank), True/False as yes/no, and a pipe in a
    column name escaped so that it does not end the cell. :func:`book_table` is the styled-HTML counterpart."""
    view = table.copy()
    for column in view.columns:
        if pd.api.types.is_float_dtype(view[column]):
            view[column] = view[column].map(lambda x: "" if pd.isna(x) else f"{x:.{digits}f}")
    view.columns = [str(c).replace("|", r"\|") for c in view.columns]
    return view.astype(str).replace({"True": VERDICT_WORDS[0], "False": VERDICT_WORDS[1]}).to_markdown(index=False)


def scientific(value: float, digits: int = 1) -> str:
    """``value`` as ``m × 10<sup>e</sup>`` (inline HTML for Markdown prose), the mantissa with ``digits`` decimals."""
    mantissa, exponent = f"{value:.{digits}e}".split("e")
    return f"{mantissa} × 10<sup>{int(exponent)}</sup>"


def per_model_table(summary: pd.DataFrame, columns: dict[str, tuple[str, int, float]]) -> pd.DataFrame:
    """One row per model; ``columns`` maps a summary column to (heading, digits, scale)."""
    rows = {}
    for model, part in summary.groupby("model", sort=False):
        rows[model] = {heading: mean_spread(part[column], digits, scale)
                       for column, (heading, digits, scale) in columns.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def accuracy_standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error of an accuracy (a fraction in [0, 1]) measured on ``n`` independent test
    examples: the spread that the finite test set alone adds to the number (as a fraction)."""
    if n <= 0 or not 0.0 <= accuracy <= 1.0:
        raise ValueError("attnlib: the accuracy must be a fraction in [0, 1] on at least one example")
    return float(np.sqrt(accuracy * (1.0 - accuracy) / n))


def t1_paper_layout(table: pd.DataFrame, tolerance: float, variant: str = "default",
                    datasets: Sequence[str] = ("SST2", "SST5"),
                    models: Sequence[str] = ("Attn-FC", "Attn-TC"), mark_misses: bool = False) -> pd.DataFrame:
    """The paper's T1 layout: one row per dataset, per model our mean ± std over seeds beside the paper's value.

    ``table`` is :meth:`attnlib.experiments.sst.SSTResult.table` (accuracies in %). Our cell also says how far
    the mean is from the paper's and whether that is within ``tolerance`` points; a cell with no run in
    ``table`` reads "not run". Columns: ``dataset``, then ``<model>: ours (%)`` and ``<model>: paper (%)``.
    With ``mark_misses`` a cell outside the tolerance is set in bold with a cross (Markdown), so a reader
    sees the miss without reading the numbers, no cell repeats "within"/"outside" in words, and each number
    (the mean, ± the std, the difference, the paper's value) is an unbreakable inline HTML span
    (:func:`unbroken`): a narrow screen wraps a cell between its numbers, never inside one.
    """
    part = table[table.variant == variant].set_index(["dataset", "model"])
    rows = []
    for kind in datasets:
        row = {"dataset": kind}
        for model in models:
            if (kind, model) in part.index:
                r = part.loc[(kind, model)]
                verdict = "within" if abs(r["diff"]) <= tolerance else "outside"
                if mark_misses:  # the mark says within or outside: the cell keeps only the numbers, unbroken
                    parts = (f"{r.test_mean:.2f}", f"± {r.test_std:.2f}", f"({r['diff']:+.2f})")
                    cell = " ".join(unbroken(part) for part in parts)
                    cell = f"✗ **{cell}**" if verdict == "outside" else cell
                else:
                    cell = f"{r.test_mean:.2f} ± {r.test_std:.2f} ({r['diff']:+.2f}, {verdict} ±{tolerance:g})"
                row[f"{model}: ours (%)"] = cell
                row[f"{model}: paper (%)"] = unbroken(f"{r.paper:.2f}") if mark_misses else f"{r.paper:.2f}"
            else:
                row[f"{model}: ours (%)"] = "not run"
                row[f"{model}: paper (%)"] = ""
        rows.append(row)
    return pd.DataFrame(rows)


CLAIMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "C1": ("A persisting identity ties a topic word's score to its embedding norm, whatever the classifier",
           ("F1", "N1", "N2", "N6", "F5")),
    "C2": ("Score and norm promote each other: freezing either one slows or stops learning", ("F4",)),
    "C3": ("With a fixed linear classifier, score and norm only grow and attention goes to the topic words "
           "(checked numerically; the proof is not checked)", ("N3", "N4")),
    "C4": ("The empirical findings: every model learns the synthetic task, the fixed classifier fastest and with "
           "the highest scores; on SST attention moves from frequent to pure words; the SST test accuracies",
           ("F2", "F3", "F6", "F7", "T1")),
}
"""The paper's claims and the experiments (scorecard IDs) that test each one."""


def combine_verdicts(verdicts: Sequence[str]) -> str:
    """One verdict for several: *reported* if none is gated, *reproduced* if every gated one is, *not reproduced*
    if every gated one is not, else *partly* (the rule the scorecard applies to an experiment's rows)."""
    gated = [v for v in verdicts if v != "reported"]
    if not gated:
        return "reported"
    if all(v == "reproduced" for v in gated):
        return "reproduced"
    if all(v == "not reproduced" for v in gated):
        return "not reproduced"
    return "partly"


VERDICT_BADGES = {"reproduced": ("holds", "holds"), "partly": ("partly", "partly"),
                  "not reproduced": ("fails", "fails"), "reported": ("reported", "reported"),
                  "not run": ("not run", "reported")}
"""Per verdict, the word a reader sees on the book's first page and its style (CSS class suffix
``attnlib-verdict-<style>``: green, amber, red, grey in book/_static/attnlib.css)."""


def unbroken(text: str) -> str:
    """``text`` as an inline HTML span that a line never breaks inside (``attnlib-nowrap`` in
    book/_static/attnlib.css), for a number in a table cell that a narrow screen would otherwise split."""
    return f'<span class="attnlib-nowrap">{text}</span>'


def verdict_badge(verdict: str) -> str:
    """``verdict`` (a scorecard or claim verdict) as an inline HTML badge: a coloured word, for Markdown."""
    return _badge(*VERDICT_BADGES.get(verdict, (verdict, "reported")))


def _badge(word: str, style: str) -> str:
    """``word`` as an inline HTML badge of ``style`` (green, amber, red or grey in book/_static/attnlib.css)."""
    return f'<span class="attnlib-verdict attnlib-verdict-{style}">{word}</span>'


VERDICT_WORDS = ("yes", "no")
"""How a True/False column reads in a book table unless ``verdicts`` names other words."""


def _number(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals; tiny non-zero values in scientific notation (not as 0.000)."""
    if value != 0 and abs(value) < 0.5 * 10.0 ** -digits:
        return f"{value:.1e}"
    return f"{value:,.{digits}f}"


def _cell(value, digits: int, words: tuple[str, str]) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return words[0] if value else words[1]
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return _number(float(value), digits)
    return str(value)


def book_table(table: pd.DataFrame, columns: dict[str, str] | None = None, digits: int | dict[str, int] = 3,
               verdicts: dict[str, tuple[str, str]] | None = None):
    """``table`` as the book shows it: a pandas Styler without the index column.

    ``columns`` maps column names to the headings shown (and picks and orders the columns; default: all,
    underscores as spaces); ``digits`` is the number of decimals, for all columns or per column (by the
    original name); True/False read as ``verdicts[column]`` (default "yes"/"no"); a missing value as "–";
    integers get thousands separators. The values are formatted as text, so nothing is truncated.
    """
    columns = dict(columns) if columns is not None else {c: str(c).replace("_", " ") for c in table.columns}
    verdicts = verdicts or {}
    shown = pd.DataFrame({
        heading: [_cell(v, digits.get(column, 3) if isinstance(digits, dict) else digits,
                        verdicts.get(column, VERDICT_WORDS)) for v in table[column].tolist()]
        for column, heading in columns.items()})
    return shown.style.hide(axis="index")


FINDINGS = {
    "holds": ("holds", "holds", "every test passes"),
    "strict": ("criterion strict", "partly",
               "each missed test passes in some of our runs: our criterion asks more runs than the paper's one"),
    "fails in part": ("fails in part", "fails", "some test passes in none of our runs, others pass"),
    "fails": ("fails", "fails", "every test fails in all our runs"),
    "reported": ("reported", "reported", "nothing is tested against a pass condition"),
    "not run": ("not run", "reported", "none of the experiments that test it ran"),
}
"""Per finding: the word a reader sees, its badge style (as :data:`VERDICT_BADGES`) and what it means.

A finding tells apart the two ways a claim can miss: *criterion strict*, where each missed test is met by
some of its units (seeds, cells, model-seed pairs), so a single run like the paper's can show the claim and
the miss is the strictness of asking it of (nearly) every run; and *fails*, where a test is met by none of
its units, so the claim, as we test it, does not hold in our runs at all."""


def row_finding(passed: int, needed: int, total: int) -> str:
    """One scorecard row's finding: *holds* when ``passed >= needed``, *fails* when no unit passes,
    *strict* when some but too few do, *reported* when the row has no pass condition (``total == 0``)."""
    if total == 0:
        return "reported"
    if passed >= needed:
        return "holds"
    return "fails" if passed == 0 else "strict"


def claim_findings(rows: pd.DataFrame, claims: dict[str, tuple[str, tuple[str, ...]]] = CLAIMS) -> pd.DataFrame:
    """One line per claim from the scorecard's rows (columns ``id``, ``claim``, ``passed``, ``needed``,
    ``total``, as :func:`attnlib.scorecard.scorecard_table`): ``claim``, ``statement``, ``finding`` (a key of
    :data:`FINDINGS`), ``ids`` (the experiments that test it, present ones only), ``misses`` (per experiment
    with a missed test, whether it fails or is strict, and how many of its tests miss: "F2 strict (3 tests),
    T1 fails"; empty when none misses) and ``missed_rows`` (each missed test, "F5 SST2 Attn-TC: ... (met in
    1 of 3)", in scorecard order).

    The finding is *holds* when every gated row holds; *fails* when every gated row fails (no unit passes);
    *fails in part* when some gated row fails and another holds or is partly met; *strict* when no row fails
    but some are met by too few units; *reported* when no row has a pass condition; *not run* when no row
    tests it."""
    out = []
    for claim, (statement, ids) in claims.items():
        part = rows[rows["id"].isin(ids)]
        found = [row_finding(int(r.passed), int(r.needed), int(r.total)) for r in part.itertuples()]
        gated = [f for f in found if f != "reported"]
        if part.empty:
            finding = "not run"
        elif not gated:
            finding = "reported"
        elif all(f == "holds" for f in gated):
            finding = "holds"
        elif all(f == "fails" for f in gated):
            finding = "fails"
        elif "fails" in gated:
            finding = "fails in part"
        else:
            finding = "strict"
        missed = [(r.id, f, f"{r.id} {r.claim} (met in {int(r.passed)} of {int(r.total)})")
                  for r, f in zip(part.itertuples(), found) if f in ("fails", "strict")]
        by_id: dict[str, list[str]] = {}
        for id_, f, _ in missed:
            by_id.setdefault(id_, []).append(f)
        misses = [f"{id_} {'fails' if 'fails' in kinds else 'strict'}"
                  + (f" ({len(kinds)} tests)" if len(kinds) > 1 else "") for id_, kinds in by_id.items()]
        out.append({"claim": claim, "statement": statement, "finding": finding,
                    "ids": ", ".join(i for i in ids if i in set(part["id"])), "misses": ", ".join(misses),
                    "missed_rows": "; ".join(text for _, _, text in missed)})
    return pd.DataFrame(out, columns=["claim", "statement", "finding", "ids", "misses", "missed_rows"])


def finding_badge(finding: str) -> str:
    """``finding`` (a key of :data:`FINDINGS`) as an inline HTML badge: its word in its colour."""
    word, style, _ = FINDINGS[finding]
    return _badge(word, style)


def findings_markdown(findings: pd.DataFrame) -> str:
    """The claims as a Markdown list: badge, claim, statement, the experiments that test it, and for a claim
    tested by several experiments that misses, which of them miss, each marked as failing or strict."""
    lines = []
    for r in findings.itertuples():
        tested = f" ({r.ids})" if r.ids else ""
        line = f"* {finding_badge(r.finding)} **{r.claim}.** {r.statement}{tested}."
        if r.misses and "," in r.ids:  # a claim tested by one experiment: its badge already says it all
            line += f" Missed: {r.misses}."
        lines.append(line)
    return "\n".join(lines)


def findings_legend() -> str:
    """The badges with what each means, as one Markdown sentence for the book's first page."""
    return "; ".join(f"{finding_badge(key)} {meaning}" for key, (_, _, meaning) in FINDINGS.items()
                     if key not in ("reported", "not run")) + "."
