"""Binder: the environment is pinned (binder/requirements.txt in step with the environment that builds
the book), postBuild hides no failure, and, after `make book`, a simulation of what Binder does: a fresh
virtual environment from the lock, postBuild, a Jupyter server with jupytext, and every launch button's
path of the built HTML fetched through the server's contents API as a notebook.

The simulation installs offline from the wheels `make binder-wheels` downloads (build/wheels, or
ATTNLIB_BINDER_WHEELS), and is skipped with the reason when they or the built book are missing."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
HTML = ROOT / "_build" / "html"
WHEELS = Path(os.environ.get("ATTNLIB_BINDER_WHEELS") or ROOT / "build" / "wheels")
sys.path.insert(0, str(ROOT / "tools"))
import binder_lock  # noqa: E402
import stage_book  # noqa: E402


def test_lock_is_in_step_with_this_environment() -> None:
    """Binder installs what the book was built with: regenerate with `make binder-lock` after a change."""
    assert binder_lock.differences(binder_lock.locked(), binder_lock.read_lock()) == []


def test_lock_pins_the_cpu_build_of_torch_and_the_python_of_ci() -> None:
    text = (BINDER / "requirements.txt").read_text(encoding="utf-8")
    assert f"--extra-index-url {binder_lock.TORCH_INDEX}" in text.splitlines()
    pins = binder_lock.read_lock()
    assert pins["torch"].endswith("+cpu"), pins["torch"]
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", v) for v in pins.values())
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    python = next(s["with"]["python-version"] for j in ci["jobs"].values() for s in j["steps"]
                  if s.get("uses", "").startswith("actions/setup-python"))
    assert (BINDER / "runtime.txt").read_text(encoding="utf-8").strip() == f"python-{python}"


def test_post_build_stops_at_the_first_failure() -> None:
    script = (BINDER / "postBuild").read_text(encoding="utf-8")
    assert "set -euo pipefail" in script and "|| true" not in script
    assert os.access(BINDER / "postBuild", os.X_OK)
    assert not (ROOT / "postBuild").exists(), "Binder reads binder/ only; a root postBuild would be ignored"


def launch_paths() -> dict[str, str]:
    """page -> the path its Binder launch button opens (the `urlpath` after lab/tree/), from the built HTML."""
    paths = {}
    for page in sorted(HTML.rglob("*.html")):
        for href in re.findall(r'href="(https://mybinder\.org/v2/[^"]+)"', page.read_text(encoding="utf-8")):
            urlpath = parse_qs(urlparse(unescape(href)).query)["urlpath"][0]
            assert urlpath.startswith("lab/tree/"), urlpath
            paths[page.relative_to(HTML).as_posix()] = urlpath.removeprefix("lab/tree/")
    return paths


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {}


@pytest.mark.binder
@pytest.mark.skipif(not HTML.is_dir(), reason="the book is not built: run `make book` first")
def test_every_launch_button_opens_a_notebook_in_a_fresh_binder_environment(tmp_path) -> None:
    paths = launch_paths()
    # every notebook page has a button (the intro included), each to its own notebook
    notebooks = [p for p in stage_book.toc_order(ROOT) if stage_book.is_notebook(p)]
    assert {f"{p.relative_to(ROOT).with_suffix('.html').as_posix()}" for p in notebooks} <= set(paths), paths
    assert "book/intro.html" in paths
    if not any(WHEELS.glob("torch-*.whl")) or not any(WHEELS.glob("jupyter_server-*.whl")):
        pytest.skip(f"no wheels for Binder's environment in {WHEELS}: run `make binder-wheels`")

    # Binder: a fresh environment from the lock (jupyter_server stands in for the image's server), offline
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELS), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    offline.pop("PYTHONPATH", None)
    offline.pop("PIP_EXTRA_INDEX_URL", None)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile"]
    installed = subprocess.run(pip + ["-r", str(BINDER / "requirements.txt"), "jupyter_server"], env=offline,
                               capture_output=True, text=True, timeout=1200)
    if installed.returncode != 0:
        pytest.skip(f"a fresh environment could not be made from the lock: {installed.stderr.strip()[-300:]}")

    # ... the repository as a clone has it, then postBuild, with the session's home
    repo, home = tmp_path / "repo", tmp_path / "home"
    home.mkdir()
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in filter(None, tracked.stdout.split("\0")):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    # Without the result-cache step (it executes the chapters: the book's training time): the launch
    # path must work without a cache, as it does when that step fails.
    session = {**offline, "ATTNLIB_BINDER_WARM": "off", "HOME": str(home),
               "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
               "JUPYTER_CONFIG_DIR": str(home / ".jupyter"), "JUPYTER_DATA_DIR": str(home / ".local/share/jupyter"),
               "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    built = subprocess.run([str(repo / "binder" / "postBuild")], cwd=repo, env=session, capture_output=True,
                           text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    viewers = json.loads((home / ".jupyter" / "labconfig" / "default_setting_overrides.json").read_text())
    assert viewers["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["markdown"] == "Jupytext Notebook"

    # ... a Jupyter server, and every launch path through its contents API
    port, token = _free_port(), "binder-simulation"
    server = subprocess.Popen([str(venv / "bin" / "jupyter"), "server", "--no-browser", f"--port={port}",
                               "--ServerApp.ip=127.0.0.1", "--allow-root", f"--IdentityProvider.token={token}",
                               f"--ServerApp.root_dir={repo}"],
                              cwd=repo, env=session, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            if server.poll() is not None:
                pytest.fail(f"the Jupyter server exited: {server.stderr.read()[-2000:]}")
            try:
                if _get(f"{base}/api/status?token={token}")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the Jupyter server did not answer within a minute")
        for page, path in paths.items():
            status, model = _get(f"{base}/api/contents/{path}?type=notebook&content=1&token={token}")
            assert status == 200, f"{page}: its launch button opens {path}, which the server cannot open ({status})"
            assert model["type"] == "notebook" and model["content"]["cells"], f"{page}: {path} is not a notebook"
        # and a MyST source itself opens as a notebook (jupytext's contents manager)
        status, model = _get(f"{base}/api/contents/book/setup.md?type=notebook&content=1&token={token}")
        assert status == 200 and model["type"] == "notebook"
    finally:
        server.terminate()
        server.wait(timeout=60)
