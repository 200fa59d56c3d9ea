"""Notebook and book lint: kernels, the table of contents, no committed outputs, environment in step."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import jupytext
import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [toc["root"]]
    for chapter in toc.get("chapters", []):
        entries.append(chapter["file"])
        entries += [section["file"] for section in chapter.get("sections", [])]
    return entries


def notebooks() -> list[Path]:
    return [p for p in sorted(BOOK.glob("*.md")) if "kernelspec:" in p.read_text().split("\n---", 1)[0]]


def test_every_toc_entry_exists_and_every_page_is_listed() -> None:
    entries = toc_files()
    assert len(entries) == len(set(entries))
    for entry in entries:
        assert (ROOT / f"{entry}.md").is_file(), f"_toc.yml lists {entry}, but {entry}.md does not exist"
    pages = {f"book/{p.stem}" for p in BOOK.glob("*.md")}
    assert pages == set(entries), f"pages not in _toc.yml: {sorted(pages - set(entries))}"


def test_there_are_notebooks() -> None:
    assert {"setup", "theory", "synthetic"} <= {p.stem for p in notebooks()}


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_notebook_is_myst_with_python3_kernel_and_parameters(path: Path) -> None:
    notebook = jupytext.read(path)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert notebook.metadata["jupytext"]["text_representation"]["format_name"] == "myst"
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.get("outputs") for c in code)
    assert any("parameters" in c.metadata.get("tags", []) for c in code), "no cell tagged 'parameters'"


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_notebooks_are_thin(path: Path) -> None:
    """Model and training code live in attnlib: notebooks define no classes and train nothing by hand."""
    source = path.read_text()
    assert not re.search(r"^\s*class\s", source, re.M)
    assert not re.search(r"\b(torch\.|backward\(|\.step\()", source)


def test_no_ipynb_committed_in_book() -> None:
    tracked = subprocess.run(["git", "ls-files", "book"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not [f for f in tracked if f.endswith(".ipynb")]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[ ]", r.strip(), maxsplit=1)[0].lower() for r in requirements if r.strip()}


def test_environment_yml_matches_pyproject() -> None:
    """conda cannot run here, so keep environment.yml and pyproject.toml listing the same packages."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= _names(extra)
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    listed = _names([p for p in pip if not p.startswith("-")])
    assert listed == wanted
    assert "torch==2.13.0" in pip
