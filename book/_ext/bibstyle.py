"""Sphinx extension: the bibliography's labels in the author-year form the text cites with.

sphinxcontrib-bibtex cites in the text by author and year (``bibtex_reference_style: author_year``) but
labels the bibliography with pybtex's alphabetic labels ([LMN21]) unless a style says otherwise. This
registers the pybtex style ``attnlib_authoryear`` (pybtex's ``unsrt`` entries, sorted by author, year and
title) whose labels read "Kim 2014", "Lu and Mao 2021" or "Lu et al. 2021", with a, b, ... added where two
entries would get the same label; ``bibtex_default_style`` in ``_config.yml`` selects it.
"""

from __future__ import annotations

from collections import Counter

import pybtex.plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting.author_year_title import SortingStyle

NAME = "attnlib_authoryear"


def author_year(entry) -> str:
    """"Kim 2014", "Lu and Mao 2021", "Lu et al. 2021": the first authors' last names and the year."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [" ".join(person.last_names) for person in people]
    if not names:
        who = entry.fields.get("title", entry.key)
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who} {entry.fields.get('year', '')}".strip()


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [author_year(entry) for entry in entries]
        repeated, seen = Counter(labels), Counter()
        for label in labels:
            if repeated[label] > 1:
                seen[label] += 1
                yield f"{label}{chr(ord('a') + seen[label] - 1)}"
            else:
                yield label


class AuthorYearStyle(UnsrtStyle):
    default_label_style = AuthorYearLabels
    default_sorting_style = SortingStyle


def setup(app):
    pybtex.plugin.register_plugin("pybtex.style.formatting", NAME, AuthorYearStyle, force=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
