"""Stage the book for execution: copy the sources and turn each MyST notebook into an .ipynb.

`make book` then executes the staged notebooks once with pytest + nbmake (a failing cell fails the
run) and builds the HTML from the executed copies with execution turned off, so nothing runs twice.
Paired .ipynb files never sit beside the .md sources in book/ (Sphinx would see two documents).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import jupytext
import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["_config.yml", "_toc.yml", "references.bib", "book"]


def is_notebook(path: Path) -> bool:
    """A MyST page is a notebook when its front matter names a kernel."""
    text = path.read_text(encoding="utf-8")
    return text.startswith("---") and "kernelspec:" in text.split("\n---", 1)[0]


def stage(target: Path) -> list[Path]:
    """Copy the book into ``target``, convert notebooks to .ipynb and switch execution off there."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
        else:
            shutil.copy2(source, target / name)
    config = yaml.safe_load((target / "_config.yml").read_text(encoding="utf-8"))
    config["execute"]["execute_notebooks"] = "off"
    (target / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    notebooks = []
    for page in toc_order(target):
        if is_notebook(page):
            notebook = page.with_suffix(".ipynb")
            jupytext.write(jupytext.read(page), notebook)
            page.unlink()
            notebooks.append(notebook)
    # nbmake runs them in this (reading) order, so later chapters find earlier runs in the result cache
    (target / "notebooks.txt").write_text("".join(f"{path}\n" for path in notebooks), encoding="utf-8")
    return notebooks


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
    staged = stage(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "stage")
    print(f"staged {len(staged)} notebooks: {', '.join(p.name for p in staged)}")
