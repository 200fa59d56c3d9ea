"""Provenance: the record, chapter footers, figure metadata and sidecars, atomic and byte-reproducible saves,
the results' config hashes and the provenance in the command line's metrics.json."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from attnlib import __version__  # noqa: E402
from attnlib import provenance as prov  # noqa: E402
from attnlib.config import RunConfig, SyntheticDataConfig, TrainConfig, sst_preset  # noqa: E402
from attnlib.plots.style import PROVENANCE_KEY, save_figure  # noqa: E402

KEYS = {"attnlib_version", "git_commit", "git_dirty", "config_hashes", "seeds", "device", "torch_version", "python",
        "machine"}
TINY = RunConfig(data=SyntheticDataConfig(n_nontopic=60, n_train=24, n_test=8), train=TrainConfig(epochs=4))
"""A synthetic configuration that trains in a fraction of a second."""


@pytest.fixture(autouse=True)
def no_training_cache(monkeypatch) -> None:
    """The tiny runs here are not worth keeping in the user's cache of training results."""
    monkeypatch.setenv("ATTNLIB_CACHE", "off")


def _figure() -> plt.Figure:
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1, 2], [0, 1, 4], label="line")
    ax.set_title("a figure (with parentheses)")
    ax.legend()
    return fig


def _pdf_keywords(data: bytes) -> str:
    """The ``/Keywords`` string of a PDF written by matplotlib (ASCII, escaped as in its pdfRepr)."""
    start = data.index(b"/Keywords (") + len(b"/Keywords (")
    escapes = {ord("n"): "\n", ord("r"): "\r"}
    out, i = [], start
    while data[i] != ord(")"):
        if data[i] == ord("\\"):
            i += 1
            out.append(escapes.get(data[i], chr(data[i])))
        else:
            out.append(chr(data[i]))
        i += 1
    return "".join(out)


def _check_figure_files(stem: Path, expected: dict) -> None:
    """PNG text chunk, PDF Keywords and the sidecar all hold ``expected``; no timestamps anywhere."""
    sidecar = json.loads(stem.with_suffix(".provenance.json").read_text())
    assert sidecar == expected
    with Image.open(stem.with_suffix(".png")) as image:
        text = dict(image.text)
    assert json.loads(text[PROVENANCE_KEY]) == sidecar
    assert "Software" not in text and "Creation Time" not in text
    pdf = stem.with_suffix(".pdf").read_bytes()
    assert json.loads(_pdf_keywords(pdf)) == sidecar
    assert b"/CreationDate" not in pdf and b"/Producer" not in pdf


# ---------------------------------------------------------------------------------------- the record


def test_provenance_has_every_key_and_is_plain_json() -> None:
    info = prov.provenance({"Attn-FC": "a" * 16, "Attn-TC": "b" * 16}, range(3), device="cpu")
    assert set(info) == KEYS
    assert json.loads(json.dumps(info)) == info
    assert info["attnlib_version"] == __version__
    assert info["seeds"] == [0, 1, 2] and info["device"] == "cpu"
    assert info["config_hashes"] == {"Attn-FC": "a" * 16, "Attn-TC": "b" * 16}
    assert info == prov.provenance({"Attn-FC": "a" * 16, "Attn-TC": "b" * 16}, [0, 1, 2], device="cpu")


def test_single_hash_default_device_and_no_seeds() -> None:
    from attnlib.device import default_device

    info = prov.provenance("c" * 16)
    assert info["config_hashes"] == {"config": "c" * 16}
    assert info["seeds"] is None and info["device"] == str(default_device())
    assert prov.provenance()["config_hashes"] == {}


def test_git_state_of_this_checkout_or_unknown() -> None:
    commit, dirty = prov.git_state()
    if commit == prov.UNKNOWN:
        assert dirty is None
    else:
        assert re.fullmatch(r"[0-9a-f]{40}", commit) and isinstance(dirty, bool)


def test_git_unknown_outside_a_checkout_and_without_git(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(prov, "ROOT", tmp_path)
    assert prov.git_state() == (prov.UNKNOWN, None)
    monkeypatch.undo()
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable on the path
    assert prov.git_state() == (prov.UNKNOWN, None)
    info = prov.provenance("c" * 16, [0])
    assert info["git_commit"] == prov.UNKNOWN and info["git_dirty"] is None
    assert "commit unknown" in prov.footer_markdown(info)


def test_footer_is_one_line_naming_versions_commit_device_seeds_and_hashes() -> None:
    info = prov.provenance({"Attn-FC": "a" * 16}, range(5), device="cpu")
    footer = prov.footer_markdown(info)
    assert "\n" not in footer
    for part in (f"attnlib {__version__}", info["torch_version"], "on cpu", "seeds 0-4", "a" * 16):
        assert part in footer
    if info["git_commit"] != prov.UNKNOWN:
        assert info["git_commit"][:7] in footer
    many = {**info, "config_hashes": {f"run{i}": f"{i:016d}" for i in range(10)}, "seeds": [0, 2, 7]}
    footer = prov.footer_markdown(many)
    assert "10 configurations" in footer and prov.hashes_digest(many["config_hashes"]) in footer
    assert "seeds 0, 2, 7" in footer
    assert "seed 3;" in prov.footer_markdown({**info, "seeds": [3]})


# ---------------------------------------------------------------------------------------- figures


def test_same_figure_saved_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    info = prov.provenance({"capacity.Attn-TL (h=50)": "d" * 16}, [0, 1], device="cpu")
    fig = _figure()
    (tmp_path / "a").mkdir()
    first = save_figure(fig, tmp_path / "a" / "fig", info)
    before = {p.name: p.read_bytes() for p in first}
    assert sorted(before) == ["fig.pdf", "fig.png", "fig.provenance.json"]
    again = save_figure(fig, tmp_path / "a" / "fig", info)
    assert {p.name: p.read_bytes() for p in again} == before
    (tmp_path / "b").mkdir()
    elsewhere = save_figure(_figure(), tmp_path / "b" / "fig", info)  # a fresh, identical figure
    assert {p.name: p.read_bytes() for p in elsewhere} == before
    plt.close("all")
    _check_figure_files(tmp_path / "a" / "fig", info)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(before)  # no temporary files left


def test_without_provenance_there_is_no_sidecar_and_no_metadata(tmp_path: Path) -> None:
    fig = _figure()
    paths = save_figure(fig, tmp_path / "plain")
    plt.close(fig)
    assert [p.name for p in paths] == ["plain.png", "plain.pdf"]
    with Image.open(paths[0]) as image:
        assert PROVENANCE_KEY not in image.text and "Software" not in image.text
    assert not (tmp_path / "plain.provenance.json").exists()


def test_a_failed_save_leaves_the_previous_file(tmp_path: Path, monkeypatch) -> None:
    info = prov.provenance("e" * 16, [0], device="cpu")
    fig = _figure()
    save_figure(fig, tmp_path / "fig", info)
    before = (tmp_path / "fig.png").read_bytes()
    real = fig.savefig

    def crash(target, **kwargs):
        real(target, **kwargs)
        Path(target).write_bytes(Path(target).read_bytes()[:100])  # half a file ...
        raise KeyboardInterrupt  # ... and the run is killed

    monkeypatch.setattr(fig, "savefig", crash)
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, tmp_path / "fig", {**info, "seeds": [1]})
    plt.close(fig)
    assert (tmp_path / "fig.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.pdf", "fig.png", "fig.provenance.json"]


# ---------------------------------------------------------------------------------------- results


def test_synthetic_and_ablation_results_name_their_config_hashes() -> None:
    from attnlib.experiments import EXPERIMENTS

    synthetic = EXPERIMENTS["synthetic"].run(config=TINY, seeds=[0, 1], heads=("FC", "TL"), quiet=True).provenance()
    assert set(synthetic) == KEYS and synthetic["seeds"] == [0, 1]
    assert synthetic["config_hashes"] == {name: TINY.replace(model={"head": head}).config_hash()
                                          for name, head in (("Attn-FC", "FC"), ("Attn-TL", "TL"))}
    ablation = EXPERIMENTS["ablation"].run(config=TINY, seeds=[0], heads=("FC",), record_every=2, quiet=True)
    info = ablation.provenance()
    assert info["seeds"] == [0] and set(info["config_hashes"]) == set(ablation.runs)
    base = ablation.config
    assert info["config_hashes"]["Attn-FC-KF"] == base.replace(model={"head": "FC"},
                                                               train={"freeze": ("keys",)}).config_hash()
    assert len(set(info["config_hashes"].values())) == len(ablation.runs)


def test_beyond_result_names_every_run() -> None:
    from attnlib.experiments import beyond

    seeds = [0]
    result = beyond.BeyondResult(
        TINY, seeds, beyond.suppression_study(seeds, heads=("FC",), epochs=3, base=TINY),
        beyond.identity_sweeps(seeds, heads=("FC",), ms=(5, 20), query_stds=(0.3,), epochs=3, base=TINY),
        beyond.breaking_cases(seeds, heads=("FC",), cases=("baseline", "trainable query"), epochs=3, base=TINY),
        beyond.capacity_study(seeds, widths=(2,), epochs=3, record_every=1, base=TINY),
        beyond.growth_study(seeds, epochs=3, record_every=1, base=TINY))
    info = result.provenance()
    hashes = info["config_hashes"]
    assert info["seeds"] == seeds and json.loads(json.dumps(info)) == info
    assert {"sweep.m=5.Attn-FC", "sweep.m=20.Attn-FC", "breaking.trainable_query.Attn-FC", "growth"} <= set(hashes)
    assert sum(k.startswith("suppression.") for k in hashes) == len(result.suppression.runs)
    assert sum(k.startswith("capacity.") for k in hashes) == len(result.capacity.runs)
    assert hashes["sweep.m=5.Attn-FC"] != hashes["sweep.m=20.Attn-FC"]  # the m sweep hashes its own m
    assert hashes["breaking.baseline.Attn-FC"] != hashes["breaking.trainable_query.Attn-FC"]


def test_sst_result_names_its_settings() -> None:
    from attnlib.experiments.sst import SSTResult

    runs = {}
    for setting in (("SST2", "FC", "default"), ("SST5", "TC", "unmasked")):
        runs[setting] = SimpleNamespace(key="_".join(setting), config=sst_preset(*setting), seeds=[0, 1, 2])
    info = SSTResult(runs).provenance()
    assert info["seeds"] == [0, 1, 2]
    assert info["config_hashes"] == {"SST2_FC_default": sst_preset("SST2", "FC", "default").config_hash(),
                                     "SST5_TC_unmasked": sst_preset("SST5", "TC", "unmasked").config_hash()}


def test_stored_sst_provenance_keeps_its_keys() -> None:
    from attnlib.experiments.sst.training import _provenance

    info = _provenance()
    assert {"attnlib_version", "git_commit", "git_dirty", "torch_version", "device", "cpu_threads", "machine",
            "python"} <= set(info)
    assert "created" not in info and "seeds" not in info


# ---------------------------------------------------------------------------------------- command line


def test_cli_metrics_and_figures_carry_provenance(tmp_path: Path, monkeypatch) -> None:
    """``attnlib run synthetic`` on a tiny configuration: metrics.json keeps its keys and gains provenance."""
    from dataclasses import replace

    from attnlib.cli import main
    from attnlib.experiments import EXPERIMENTS

    real = EXPERIMENTS["synthetic"].run

    def tiny(config=None, seeds=None, **options):
        return real(config=TINY, seeds=seeds, **{**options, "quiet": True})

    monkeypatch.setitem(EXPERIMENTS, "synthetic", replace(EXPERIMENTS["synthetic"], run=tiny))
    assert main(["run", "synthetic", "--seeds", "2", "--out", str(tmp_path), "--quiet"]) == 0
    folder = tmp_path / "synthetic"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["seeds"] == [0, 1] and metrics["attnlib_version"] == __version__
    assert "Attn-FC.test_accuracy" in metrics
    info = metrics["provenance"]
    assert set(info) == KEYS and info["seeds"] == [0, 1]
    assert set(info["config_hashes"]) == {"Attn-FC", "Attn-TC", "Attn-TL"}
    stems = sorted(p.name[: -len(".provenance.json")] for p in folder.glob("*.provenance.json"))
    assert "f1_sen_curves" in stems and "f1_sen_curves_single_run" in stems
    assert stems == sorted(p.stem for p in folder.glob("*.png"))
    for stem in stems:
        _check_figure_files(folder / stem, info)
