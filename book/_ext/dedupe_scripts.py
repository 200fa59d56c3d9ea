"""Sphinx extension: drop repeated identical <script> entries from each page.

With Sphinx 7.4, an inline script that an extension adds in `builder-inited` (sphinx-thebe,
sphinx-togglebutton) is registered twice, once with filename None and once with '', so both copies
reach the page, and the second `const THEBE_JS_URL` is a JavaScript syntax error in every browser.
Keeping the first of each identical script removes the error.
"""

from __future__ import annotations


def _dedupe(app, pagename, templatename, context, doctree) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {})
        key = (getattr(script, "filename", script) or "",
               tuple(sorted((k, str(v)) for k, v in attributes.items() if k != "priority")))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
