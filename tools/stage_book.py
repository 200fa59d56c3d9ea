"""Stage the book for execution: copy the sources and turn each MyST notebook into an .ipynb.

`make book` then executes the staged notebooks once with pytest + nbmake (a failing cell fails the
run) and builds the HTML from the executed copies with execution turned off, so nothing runs twice.
Paired .ipynb files never sit beside the .md sources in book/ (Sphinx would see two documents).
``ATTNLIB_REPOSITORY=OWNER/NAME`` points the staged book's GitHub and Binder buttons at that repository.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import jupytext
import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["_config.yml", "_toc.yml", "references.bib", "book"]
REPOSITORY_VARIABLE = "ATTNLIB_REPOSITORY"
"""OWNER/NAME of the GitHub repository the book is published from (the Pages workflow sets it from
``github.repository``): the GitHub and Binder buttons of the staged book point there. Unset, the
``repository.url`` of ``_config.yml`` stays."""


def is_notebook(path: Path) -> bool:
    """A MyST page is a notebook when its front matter names a kernel."""
    text = path.read_text(encoding="utf-8")
    return text.startswith("---") and "kernelspec:" in text.split("\n---", 1)[0]


def repository_url() -> str | None:
    """The GitHub URL ``ATTNLIB_REPOSITORY`` names, or None when it is unset or empty."""
    repository = os.environ.get(REPOSITORY_VARIABLE, "").strip()
    if not repository:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
        raise StageError(f"{REPOSITORY_VARIABLE} must be OWNER/NAME (as github.repository), got {repository!r}")
    return f"https://github.com/{repository}"


RUN_FIRST = ("beyond", "theory", "intro", "sst")
"""Notebooks that ``notebooks.txt`` lists first, in this order; the others follow in reading order. The
longest chapters start first, so that two test processes (pytest-xdist hands each the next two in the
list) finish together: the beyond-the-paper studies on one, the introduction (which trains the runs the
synthetic, ablation and scorecard chapters then read from the result cache) on the other."""

MARKER = ".attnlib-stage"
"""Written into every stage: a folder is replaced only when it carries it (a stage this script made)."""


class StageError(Exception):
    """A folder that ``stage`` refuses to replace."""


def clear(target: Path) -> None:
    """Delete a previous stage at ``target``. Anything else (the checkout, the home or working folder, a
    folder without the marker) is refused, since staging starts by deleting the whole folder."""
    if not target.exists():
        return
    resolved = target.resolve()
    protected = {ROOT, Path.home().resolve(), Path.cwd().resolve(), Path(resolved.anchor)}
    if resolved in protected or resolved in ROOT.parents:
        raise StageError(f"refusing to replace {target}: it is the checkout, a folder above it, the home or "
                         "the working folder; give an empty or new folder (e.g. build/stage)")
    if not (resolved / MARKER).is_file():
        entries = {entry.name for entry in resolved.iterdir()} if resolved.is_dir() else {""}
        # an empty folder, or a stage written before the marker existed (exactly what stage() writes)
        if entries and not (entries <= set(SOURCES) | {"notebooks.txt"} and "notebooks.txt" in entries):
            raise StageError(f"refusing to replace {target}: it exists and is not a previous stage "
                             f"(no {MARKER} file); give an empty or new folder (e.g. build/stage)")
    shutil.rmtree(resolved)


def stage(target: Path) -> list[Path]:
    """Copy the book into ``target``, convert notebooks to .ipynb and switch execution off there."""
    repository = repository_url()
    clear(target)
    target.mkdir(parents=True)
    (target / MARKER).write_text("made by tools/stage_book.py; replaced by the next stage\n", encoding="utf-8")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
        else:
            shutil.copy2(source, target / name)
    config = yaml.safe_load((target / "_config.yml").read_text(encoding="utf-8"))
    config["execute"]["execute_notebooks"] = "off"
    if repository:
        config["repository"]["url"] = repository
    (target / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    notebooks = []
    for page in toc_order(target):
        if is_notebook(page):
            notebook = page.with_suffix(".ipynb")
            jupytext.write(jupytext.read(page), notebook)
            page.unlink()
            notebooks.append(notebook)
    # nbmake runs them in this order: the longest first (RUN_FIRST), then reading order
    (target / "notebooks.txt").write_text("".join(f"{path}\n" for path in execution_order(notebooks)),
                                          encoding="utf-8")
    return notebooks


def execution_order(notebooks: list[Path]) -> list[Path]:
    """``notebooks`` with those named in :data:`RUN_FIRST` first, in its order, then the rest as given."""
    rank = {name: k for k, name in enumerate(RUN_FIRST)}
    return sorted(notebooks, key=lambda path: rank.get(path.stem, len(rank)))


def toc_order(root: Path) -> list[Path]:
    """The book's pages in reading order, as ``_toc.yml`` lists them."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []) + entry.get("chapters", []))

    walk(toc.get("chapters", []) + [c for part in toc.get("parts", []) for c in part.get("chapters", [])])
    return [root / f"{name}.md" for name in files]


if __name__ == "__main__":
    try:
        staged = stage(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "stage")
    except StageError as error:
        sys.exit(f"attnlib: {error}")
    print(f"staged {len(staged)} notebooks: {', '.join(p.name for p in staged)}")
