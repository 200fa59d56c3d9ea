"""Stored SST runs: manifest and sha256, identity checks, verification, atomic saving, where they are found,
and what ``attnlib run sst`` serves, skips or trains. Small runs on a made-up corpus stand in for SST."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from attnlib.config import ModelConfig, RunConfig, SSTDataConfig, TrainConfig
from attnlib.data.corpus import Corpus, Dataset
from attnlib.data.transforms import PAD_ID
from attnlib.experiments import sst
from attnlib.experiments.sst import serving
from attnlib.experiments.sst import storage as sst_store
from attnlib.experiments.sst import verification as sst_verify
from attnlib.experiments.sst.storage import MANIFEST, StoredRunError, load_run, regenerate_manifest, save_run
from attnlib.experiments.sst.training import at_best, reduce_run

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "results" / "sst"
VOCAB = ["$PAD$", "a", "powerful", "sequel", "and", "one", "of", "the", "best", "films", "year", "stupid", "mess",
         "solid", "suffers", "dull"]
IDX = {w: i for i, w in enumerate(VOCAB)}
TRAIN = ["a powerful sequel and one of the best films of the year", "the best films", "a solid sequel",
         "a stupid mess", "the year suffers", "dull and stupid", "powerful and solid", "the mess of the year",
         "a dull sequel", "the best year"]


def dataset(n_classes: int) -> Dataset:
    rng = np.random.default_rng(n_classes)
    labels = rng.integers(0, n_classes, len(TRAIN)) if n_classes > 2 else np.array([1, 1, 1, 0, 0, 0, 1, 0, 0, 1])
    sentences = [np.array([IDX[w] for w in t.split()]) for t in TRAIN]
    corpus = Corpus(sentences, labels, len(VOCAB))
    flipped = labels[:6].copy()
    flipped[[1, 4]] = (flipped[[1, 4]] + 1) % n_classes
    dev = Corpus(sentences[:6], flipped, len(VOCAB))  # partly disagrees: early stopping ends training
    return Dataset(f"SST{n_classes}", VOCAB, n_classes, {"train": corpus, "dev": dev, "test": corpus})


def config(kind: str, variant: str) -> RunConfig:
    return RunConfig(data=SSTDataConfig(kind=kind), model=ModelConfig(head="FC", d_embed=6, d_key=3, embed_init_std=0.3),
                     train=TrainConfig(lr=1.0, epochs=150, dtype="float32", patience=8 + (variant != "default"),
                                       record_every=10))


def make_run(kind: str = "SST2", variant: str = "default", seeds=(0, 1)):
    """A run in the current format (scores and projected embeddings at the best epoch) on a tiny corpus."""
    from attnlib.train import train

    data, cfg = dataset(2 if kind == "SST2" else 5), config(kind, variant)
    result = train(cfg.model, cfg.train, [data] * len(seeds), list(seeds), trace_words=np.arange(len(VOCAB)),
                   quiet=True, keep_params=True)
    run = reduce_run(result, cfg, kind, "FC", variant, data, n_top=4)
    run.best_scores, run.best_projected, run.at_best = at_best(result, cfg, data)
    run.provenance = {"config_hash": cfg.config_hash(), "dataset_fingerprint": data.fingerprint(), "wall_time_s": 2.0}
    return run, data


@pytest.fixture(scope="module")
def sst2():
    return make_run("SST2")


def load(folder, kind="SST2", variant="default"):
    return load_run(kind, "FC", variant, folder, config(kind, variant))


def rewrite_npz(path: Path, **changes) -> None:
    """Change arrays of a stored npz in place, as someone editing the file would (the manifest untouched)."""
    with np.load(path) as z:
        arrays = {name: z[name] for name in z.files}
    arrays.update(changes)
    np.savez_compressed(path, **arrays)


def test_save_records_every_file_in_the_manifest_and_load_checks_it(sst2, tmp_path):
    run, data = sst2
    save_run(run, tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())["files"]
    assert set(manifest) == {"SST2_FC_default.npz", "SST2_FC_default.json"}
    back = load(tmp_path)
    assert back.store_format == sst_store.FORMAT and back.best_projected.shape == (2, len(VOCAB), 2)
    np.testing.assert_array_equal(back.final_test_accuracy, run.final_test_accuracy)
    report = sst_verify.verify_run(back, data, epochs=20)
    assert report["ok"], report["failed"]
    assert {name: c["status"] for name, c in report["checks"].items()} == {
        "integrity": "passed", "patience": "passed", "data": "passed", "recompute": "passed", "f5": "passed",
        "replay": "passed"}


def test_an_edited_accuracy_is_refused_by_its_sha256(sst2, tmp_path):
    run, _ = sst2
    save_run(run, tmp_path)
    rewrite_npz(tmp_path / "SST2_FC_default.npz", final_test_accuracy=np.array([0.99, 0.99]))
    with pytest.raises(StoredRunError, match=r"SST2_FC_default\.npz does not have the sha256 recorded") as error:
        load(tmp_path)
    assert "\n" not in str(error.value)


def test_an_edited_accuracy_under_a_regenerated_manifest_fails_the_recomputation(sst2, tmp_path):
    run, data = sst2
    save_run(run, tmp_path)
    rewrite_npz(tmp_path / "SST2_FC_default.npz", final_test_accuracy=run.final_test_accuracy + 0.1)
    regenerate_manifest(tmp_path)
    report = sst_verify.verify_run(load(tmp_path), data, replay=False)
    assert not report["ok"] and report["checks"]["recompute"]["status"] == "failed"
    assert "test accuracy" in report["checks"]["recompute"]["detail"]
    with pytest.raises(sst_verify.VerificationError, match="failed verification: recompute"):
        sst_verify.require_verified(report)


@pytest.mark.parametrize("edit", ["m_w", "top", "scores"])
def test_an_edited_f5_array_under_a_regenerated_manifest_fails_the_f5_check(sst2, tmp_path, edit):
    """F5's inputs are recomputed: m_w from the sentences, the top words from the stored scores."""
    run, data = sst2
    save_run(run, tmp_path)
    if edit == "m_w":
        change = {"m_w": run.m_w + 0.5}
    elif edit == "top":
        change = {"top": run.top[:, ::-1].copy()}  # the same words, ranked the wrong way round
    else:
        scores = run.scores.astype(np.float16)
        k = run.last_index(0)
        low = int(np.flatnonzero(np.isin(run.words, run.top[0], invert=True) & (run.words != PAD_ID))[0])
        scores[k, 0, low] = scores[k, 0].max() + 1  # a word outside the top now has the largest score
        change = {"scores": scores}
    rewrite_npz(tmp_path / "SST2_FC_default.npz", **change)
    regenerate_manifest(tmp_path)
    report = sst_verify.verify_run(load(tmp_path), data, replay=False)
    assert not report["ok"] and report["checks"]["f5"]["status"] == "failed"
    assert ("m_w" if edit == "m_w" else "top words") in report["checks"]["f5"]["detail"]


def test_a_swapped_variant_is_refused(sst2, tmp_path):
    run, _ = sst2
    other, _ = make_run("SST2", "patience2000")
    save_run(run, tmp_path)
    save_run(other, tmp_path)
    for ext in ("npz", "json"):
        shutil.copy(tmp_path / f"SST2_FC_patience2000.{ext}", tmp_path / f"SST2_FC_default.{ext}")
    with pytest.raises(StoredRunError, match="does not have the sha256"):
        load(tmp_path)
    regenerate_manifest(tmp_path)
    with pytest.raises(StoredRunError, match="variant 'patience2000', not 'default'"):
        load(tmp_path)
    # only the npz swapped, its sidecar kept: the npz still names its own variant
    save_run(run, tmp_path)
    shutil.copy(tmp_path / "SST2_FC_patience2000.npz", tmp_path / "SST2_FC_default.npz")
    regenerate_manifest(tmp_path)
    with pytest.raises(StoredRunError, match="its npz says variant 'patience2000'"):
        load(tmp_path)


def test_a_swapped_pair_is_refused_before_anything_would_retrain(sst2, tmp_path):
    """Two settings' files swapped and the manifest rewritten: deciding what to serve already refuses the
    mixed-up setting with one line naming its file and the --retrain command (it never counts as "not stored")."""
    run, _ = sst2
    other, _ = make_run("SST2", "patience2000")
    save_run(run, tmp_path)
    save_run(other, tmp_path)
    for ext in ("npz", "json"):
        (tmp_path / f"SST2_FC_default.{ext}").rename(tmp_path / f"swap.{ext}")
        (tmp_path / f"SST2_FC_patience2000.{ext}").rename(tmp_path / f"SST2_FC_default.{ext}")
        (tmp_path / f"swap.{ext}").rename(tmp_path / f"SST2_FC_patience2000.{ext}")
    regenerate_manifest(tmp_path)
    for variant, named in (("default", "patience2000"), ("patience2000", "default")):
        with pytest.raises(StoredRunError) as error:
            sst_store.check_stored("SST2", "FC", variant, tmp_path)
        message = str(error.value)
        assert f"SST2_FC_{variant}.json names setting SST2_FC_{named}" in message and "\n" not in message
        assert f"--only SST2_FC_{variant} --retrain" in message
    with pytest.raises(StoredRunError, match="names setting SST2_FC_patience2000"):
        serving.plan_runs(range(2), tmp_path, str(tmp_path), only=["SST2_FC_default"])
    with pytest.raises(StoredRunError, match="names setting SST2_FC_patience2000"):
        sst.load_or_train("SST2", "FC", "default", seeds=(0,), folder=tmp_path)


def test_an_edited_file_is_refused_before_anything_would_retrain(sst2, tmp_path):
    run, _ = sst2
    save_run(run, tmp_path)
    rewrite_npz(tmp_path / "SST2_FC_default.npz", final_test_accuracy=np.array([0.99, 0.99]))
    with pytest.raises(StoredRunError, match=r"SST2_FC_default\.npz does not have the sha256.*--retrain"):
        sst_store.check_stored("SST2", "FC", "default", tmp_path)
    (tmp_path / MANIFEST).unlink()
    with pytest.raises(StoredRunError, match=r"MANIFEST\.json is missing.*--only SST2_FC_default --retrain"):
        sst_store.check_stored("SST2", "FC", "default", tmp_path)


def test_a_stale_run_is_not_served_and_the_plan_says_so(sst2, tmp_path):
    """A run of the setting trained with another config (here: the tiny test config, not the preset) is stale:
    not an integrity failure, it is retrained, and the plan says why."""
    run, _ = sst2
    save_run(run, tmp_path)
    assert sst_store.check_stored("SST2", "FC", "default", tmp_path) == []
    _, train, notes = serving.plan_runs(range(2), tmp_path, "here", only=["SST2_FC_default"])
    assert train == [("SST2", "FC", "default")] and any("(stale): it is not served" in n for n in notes)


def test_another_datasets_file_is_refused(sst2, tmp_path):
    run, _ = sst2
    five, _ = make_run("SST5")
    save_run(run, tmp_path)
    save_run(five, tmp_path)
    for ext in ("npz", "json"):
        shutil.copy(tmp_path / f"SST5_FC_default.{ext}", tmp_path / f"SST2_FC_default.{ext}")
    regenerate_manifest(tmp_path)
    with pytest.raises(StoredRunError, match="kind 'SST5', not 'SST2'"):
        load(tmp_path)
    # relabelled throughout as SST2 (names and config hash): the final layer still has 5 classes
    meta = json.loads((tmp_path / "SST2_FC_default.json").read_text())
    meta.update(kind="SST2", config_hash=config("SST2", "default").config_hash())
    (tmp_path / "SST2_FC_default.json").write_text(json.dumps(meta))
    rewrite_npz(tmp_path / "SST2_FC_default.npz", kind=np.array("SST2"), config_hash=np.array(meta["config_hash"]))
    regenerate_manifest(tmp_path)
    with pytest.raises(StoredRunError, match="final layer has 5 classes, SST2 has 2"):
        load(tmp_path)


def test_a_run_of_another_vocabulary_fails_the_data_check(sst2):
    run, data = sst2
    shuffled = Dataset(data.name, list(reversed(data.vocab)), data.n_classes, data.splits)
    check = sst_verify.data_check(run, shuffled)
    assert check["status"] == "failed" and "other words" in check["detail"]


def test_patience_check_recomputes_best_and_stopping_epochs(sst2):
    import copy

    run, _ = sst2
    assert sst_verify.patience_check(run)["status"] == "passed"
    edited = copy.deepcopy(run)
    edited.best_epoch = edited.best_epoch + np.array([0, 1])
    check = sst_verify.patience_check(edited)
    assert check["status"] == "failed" and f"seed {run.seeds[1]}" in check["detail"]
    edited = copy.deepcopy(run)
    b = int(edited.best_epoch[0])
    edited.dev_loss[b + 1, 0] = edited.dev_loss[b, 0] * 0.5  # a better dev loss after the best: another best epoch
    assert sst_verify.patience_check(edited)["status"] == "failed"


@pytest.mark.parametrize("curve", ["loss", "dev_loss"])
def test_replay_compares_both_curves_of_every_seed(sst2, curve):
    import copy

    run, data = sst2
    edited = copy.deepcopy(run)
    getattr(edited, curve)[3, 1] *= 1.01  # the second seed only
    check = sst_verify.replay_check(edited, data, epochs=10)
    assert check["status"] == "failed" and check["max_rel_diff"] > 1e-3
    assert sst_verify.replay_check(run, data, epochs=10)["status"] == "passed"


def test_a_run_stored_before_the_format_reports_the_recomputation_as_not_available(sst2, tmp_path):
    import copy

    run, data = sst2
    old = copy.deepcopy(run)
    old.best_scores = np.zeros((0, 0), np.float32)
    save_run(old, tmp_path)
    back = load(tmp_path)
    assert back.store_format == 1
    report = sst_verify.verify_run(back, data, replay=False)
    assert report["ok"] and report["checks"]["recompute"]["status"] == "not available"
    assert "stored before this format" in sst_verify.describe(report)


def test_select_seeds_keeps_only_those(sst2):
    run, _ = sst2
    one = sst_store.select_seeds(run, [1])
    assert one.seeds == [1] and one.loss.shape[1] == 1 and one.best_projected.shape[0] == 1
    np.testing.assert_array_equal(one.final_test_accuracy, run.final_test_accuracy[1:])
    assert set(one.shift.seed_index) == {0} and set(one.shift.seed) == {1}
    assert len(one.shift) == (run.shift.seed == 1).sum()


def test_store_dir_is_resolved_when_asked(monkeypatch, tmp_path):
    monkeypatch.delenv(sst_store.ENV_VAR, raising=False)
    monkeypatch.setattr(sst_store, "checkout_store_dir", lambda: tmp_path / "no-checkout")
    found, where = sst_store.store_dir()
    assert found is None and "nowhere" not in where and sst_store.ENV_VAR in where
    with pytest.raises(StoredRunError, match="no folder of stored SST runs"):
        load_run("SST2", "FC", "default")
    monkeypatch.setenv(sst_store.ENV_VAR, str(tmp_path))
    assert sst_store.store_dir()[0] == tmp_path and sst.STORE_DIR == tmp_path
    assert sst_store.store_dir(tmp_path / "x")[0] == tmp_path / "x"


def test_compare_runs_holds_epochs_and_accuracy_to_the_tolerances(sst2, tmp_path):
    import copy

    run, _ = sst2
    assert sst_verify.compare_runs(run, run)["pass"].all()
    drifted = copy.deepcopy(run)
    drifted.stopped_epoch = drifted.stopped_epoch + np.array([0, sst_verify.EPOCH_TOLERANCE + 1])
    assert sst_verify.compare_runs(run, drifted)["pass"].tolist() == [True, False]
    drifted = copy.deepcopy(run)
    drifted.final_test_accuracy = drifted.final_test_accuracy + 0.002  # 0.2 point
    assert not sst_verify.compare_runs(run, drifted)["pass"].any()
    near = copy.deepcopy(run)
    near.best_epoch = near.best_epoch + 2
    near.final_test_accuracy = near.final_test_accuracy + 0.0005
    assert sst_verify.compare_runs(run, near)["pass"].all()
    assert not sst_verify.compare_runs(run, sst_store.select_seeds(run, [0]))["pass"].all()  # a seed missing


def test_require_same_fails_on_drift_with_one_line(sst2):
    """What the SST chapter calls on the settings it retrains: beyond the tolerances, the build fails."""
    import copy

    run, _ = sst2
    assert sst_verify.require_same(run, run)["pass"].all()
    drifted = copy.deepcopy(run)
    drifted.final_test_accuracy = drifted.final_test_accuracy + 0.002
    with pytest.raises(sst_verify.VerificationError, match="SST2_FC_default retrained differs") as error:
        sst_verify.require_same(run, drifted)
    assert "seed 0" in str(error.value) and "\n" not in str(error.value)


def test_compare_runs_lets_a_tie_on_a_flat_minimum_through_and_nothing_else(sst2):
    """Two runs may pick different epochs of one flat dev-loss minimum: far apart, tied within rounding."""
    import copy

    run, _ = sst2
    other = int(run.best_epoch[0]) + sst_verify.EPOCH_TOLERANCE + 2  # further than the epoch tolerance
    assert other < run.stopped_epoch[0] and np.isfinite(run.dev_loss[other, 0])
    best = float(run.dev_loss[run.best_epoch[0], 0])

    def pair(gap: float):
        stored, fresh = copy.deepcopy(run), copy.deepcopy(run)
        stored.dev_loss[other, 0] = best * (1 + gap)  # the stored curve: `other` almost as good as its best
        fresh.dev_loss[other, 0], fresh.dev_loss[run.best_epoch[0], 0] = best, best * (1 + gap)
        fresh.best_epoch[0] = other
        fresh.stopped_epoch[0] = other + run.config.train.patience
        return stored, fresh

    tied = sst_verify.compare_runs(*pair(sst_verify.TIE_RTOL / 2))
    assert tied["tied_best"].tolist() == [True, True] and tied["pass"].all()
    apart = sst_verify.compare_runs(*pair(sst_verify.TIE_RTOL * 20))
    assert apart["tied_best"].tolist() == [False, True] and apart["pass"].tolist() == [False, True]
    stored, fresh = pair(sst_verify.TIE_RTOL / 2)
    fresh.final_test_accuracy = fresh.final_test_accuracy + 0.002  # a tie does not excuse another accuracy
    assert not sst_verify.compare_runs(stored, fresh)["pass"].iloc[0]
    stored, fresh = pair(sst_verify.TIE_RTOL / 2)
    fresh.stopped_epoch[0] += 3  # stopped where its patience rule would not have: not a tie
    assert not sst_verify.compare_runs(stored, fresh)["pass"].iloc[0]


def test_the_compare_command_fails_on_drift(sst2, tmp_path, monkeypatch, capsys):
    import copy

    run, _ = sst2
    save_run(run, tmp_path / "store")
    drifted = copy.deepcopy(run)
    drifted.final_test_accuracy = drifted.final_test_accuracy - 0.01
    save_run(drifted, tmp_path / "fresh")
    # the tiny runs are not the preset's: compare them as the configuration they were trained with
    monkeypatch.setattr("attnlib.experiments.sst.storage.sst_preset", lambda kind, head, variant="default": config(kind, variant))
    from attnlib.cli import main

    assert main(["store", "compare", str(tmp_path / "store"), "--store-dir", str(tmp_path / "store")]) == 0
    assert main(["store", "compare", str(tmp_path / "fresh"), "--store-dir", str(tmp_path / "store")]) == 1
    assert "attnlib: drift: SST2_FC_default seed 0" in capsys.readouterr().err


def test_the_chapter_serves_verifies_and_compares_in_one_call(sst2, tmp_path, monkeypatch):
    import copy

    run, data = sst2
    save_run(run, tmp_path)
    monkeypatch.setenv(sst_store.ENV_VAR, str(tmp_path))
    # the tiny run is not the preset's, nor its data the SST files: check it as what it was trained with
    monkeypatch.setattr("attnlib.experiments.sst.storage.sst_preset", lambda kind, head, variant="default": config(kind, variant))
    monkeypatch.setattr(sst_verify, "sst_dataset", lambda *args, **kwargs: data)
    setting = ("SST2", "FC", "default")
    runs, skipped, provenance, reports = serving.serve_checked(run.seeds, settings=[setting])
    assert runs[setting].source == "stored" and not skipped
    assert provenance.setting.tolist() == ["SST2_FC_default"] and provenance.source.tolist() == ["stored"]
    assert [report["setting"] for report in reports] == ["SST2_FC_default"] and reports[0]["ok"]
    # retrained although stored: compared with the stored run, and still verified
    monkeypatch.setattr(serving, "train_setting", lambda *args, **kwargs: run)
    runs, _, provenance, reports = serving.serve_checked(run.seeds, retrain=[setting], settings=[setting])
    assert runs[setting] is run and len(reports) == 1
    assert provenance.loc[0, "same stopping epochs as stored"]
    assert provenance.loc[0, "max |test acc. diff| vs stored"] == 0
    drifted = copy.deepcopy(run)
    drifted.final_test_accuracy = drifted.final_test_accuracy - 0.01
    monkeypatch.setattr(serving, "train_setting", lambda *args, **kwargs: drifted)
    with pytest.raises(sst_verify.VerificationError, match="SST2_FC_default retrained differs"):
        serving.serve_checked(run.seeds, retrain=[setting], settings=[setting])
    # a slow setting with nothing stored is skipped, unless asked for
    slow = ("SST2", "TC", "default")
    monkeypatch.setattr(serving, "train_setting", lambda *args, **kwargs: run)
    runs, skipped, _, _ = serving.serve_checked(run.seeds, settings=[slow])
    assert not runs and skipped == [slow]
    runs, skipped, _, _ = serving.serve_checked(run.seeds, skip_unstored_slow=False, settings=[slow])
    assert list(runs) == [slow] and not skipped


WRITER = """
import sys, numpy as np
sys.path.insert(0, {root!r})
import pickle
from attnlib.experiments.sst.storage import save_run
run = pickle.load(open({pickle!r}, "rb"))
big = np.random.default_rng(0).normal(size=(20000, run.loss.shape[1])).astype(np.float32)
run.loss = big  # a large, incompressible array: writing takes a while
print("ready", flush=True)
for i in range(10 ** 6):
    run.final_test_accuracy = np.full(len(run.seeds), i % 2, dtype=np.float64)
    save_run(run, {folder!r})
    print("saved", flush=True)
"""


def test_a_killed_writer_leaves_the_previous_pair_or_the_new_one(sst2, tmp_path):
    import pickle

    run, _ = sst2
    save_run(run, tmp_path / "store")
    (tmp_path / "run.pkl").write_bytes(pickle.dumps(run))
    script = WRITER.format(root=str(ROOT), pickle=str(tmp_path / "run.pkl"), folder=str(tmp_path / "store"))
    seen = []
    for attempt, delay in enumerate((0.3, 0.7, 1.1, 1.6, 2.3, 2.9, 3.4)):
        writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
        if attempt % 2:  # every other kill after a whole save, at whatever speed this machine writes
            assert writer.stdout.readline().strip() == "saved"
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        back = load(tmp_path / "store")  # never refused: the manifest vouches for one whole pair
        if back.loss.shape[0] == run.loss.shape[0]:  # the first pair
            np.testing.assert_array_equal(back.final_test_accuracy, run.final_test_accuracy)
            seen.append("first")
        else:  # a pair the writer wrote whole: its accuracy and loss from the same save
            assert back.loss.shape[0] == 20000 and np.unique(back.final_test_accuracy).size == 1
            seen.append("new")
    assert "new" in seen, seen  # the kills after a whole save find its pair (or the one after it)
    whole = {"SST2_FC_default.npz", "SST2_FC_default.json", MANIFEST}
    leftovers = {p.name for p in (tmp_path / "store").iterdir()} - whole
    # a kill leaves at most the writer's temporaries (git-ignored names), never a third stored file ...
    assert all(name.endswith((".new", ".tmp", sst_store.PREVIOUS)) for name in leftovers), leftovers
    save_run(run, tmp_path / "store")  # ... and the next whole save sweeps away what dead writers left
    assert {p.name for p in (tmp_path / "store").iterdir()} == whole


def test_an_interrupted_save_serves_the_previous_pair(sst2, tmp_path, monkeypatch):
    """Killed after the new files replaced the old ones but before the manifest names them."""
    import copy

    run, _ = sst2
    folder = tmp_path / "store"
    save_run(run, folder)
    changed = copy.deepcopy(run)
    changed.final_test_accuracy = changed.final_test_accuracy * 0 + 0.5

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stands in for the kill: nothing after this point runs

    monkeypatch.setattr(sst_store, "_write_manifest", killed)
    with pytest.raises(KeyboardInterrupt):
        save_run(changed, folder)
    monkeypatch.undo()
    assert (folder / f"SST2_FC_default.npz{sst_store.PREVIOUS}").is_file()
    np.testing.assert_array_equal(load(folder).final_test_accuracy, run.final_test_accuracy)
    save_run(changed, folder)  # the next save goes through and clears the previous pair
    np.testing.assert_array_equal(load(folder).final_test_accuracy, changed.final_test_accuracy)
    assert not list(folder.glob(f"*{sst_store.PREVIOUS}"))


# --------------------------------------------------------------------------- attnlib run sst and the real store

STORED = [s for s in sst.SETTINGS if (STORE / f"{'_'.join(s)}.npz").is_file()]


@pytest.mark.skipif(len(STORED) < len(sst.SETTINGS), reason="not every SST setting is stored in results/sst")
def test_the_committed_store_passes_its_manifest():
    for setting in STORED:
        run = load_run(*setting, STORE)
        assert sst_verify.patience_check(run)["status"] == "passed"


@pytest.mark.skipif(len(STORED) < len(sst.SETTINGS), reason="not every SST setting is stored in results/sst")
def test_run_sst_serves_stored_seeds_and_skips_the_rest_of_slow_settings():
    serve, train, notes = serving.plan_runs(range(1), STORE, "results/sst")
    assert set(serve) == set(sst.SETTINGS) and not train and not notes  # --seeds 1: everything stored
    serve, train, notes = serving.plan_runs(range(4), STORE, "results/sst")
    assert set(train) == set(sst.SETTINGS) - sst.SLOW_SETTINGS  # fast: trained, all four seeds
    assert {s: v for s, v in serve.items()} == {s: [0, 1, 2] for s in sst.SLOW_SETTINGS}
    assert len(notes) == len(sst.SLOW_SETTINGS)
    for note in notes:
        assert "seed 3 skipped" in note and "--seeds 4`" in note and " min to train 1 seed" in note
    serve, train, _ = serving.plan_runs(range(4), STORE, "results/sst", only=["SST2_TC_unmasked"])
    assert train == [("SST2", "TC", "unmasked")] and not serve  # named: trained whatever it costs


@pytest.mark.skipif(not {("SST2", "FC", "default"), ("SST2", "FC", "patience2000")} <= set(STORED),
                    reason="no stored SST2 Attn-FC runs")
@pytest.mark.parametrize("damage", ["swapped", "edited"])
def test_run_sst_refuses_a_damaged_store_and_never_retrains(damage, tmp_path, capsys, monkeypatch):
    """`attnlib run sst --only KEY` over a swapped (manifest rewritten) or edited stored run: one line naming
    the file and the --retrain command, a non-zero exit, and no training at all."""
    from attnlib import cli

    store = tmp_path / "store"
    store.mkdir()
    a, b = "SST2_FC_default", "SST2_FC_patience2000"
    for ext in ("npz", "json"):
        shutil.copy(STORE / f"{a}.{ext}", store / f"{(b if damage == 'swapped' else a)}.{ext}")
        shutil.copy(STORE / f"{b}.{ext}", store / f"{(a if damage == 'swapped' else b)}.{ext}")
    regenerate_manifest(store)
    if damage == "edited":
        rewrite_npz(store / f"{a}.npz", final_test_accuracy=np.array([0.9, 0.9, 0.9]))

    def no_training(*args, **kwargs):
        raise AssertionError("attnlib run sst retrained over a damaged store")

    monkeypatch.setattr(serving, "train_setting", no_training)
    code = cli.main(["run", "sst", "--only", a, "--store-dir", str(store), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("attnlib: ")
    assert str(store / f"{a}.") in err[0] and f"`attnlib run sst --only {a} --retrain`" in err[0]
    assert ("another setting's file" if damage == "swapped" else "does not have the sha256") in err[0]


def test_run_sst_with_an_empty_store_skips_slow_settings_and_says_where_it_looked(tmp_path):
    serve, train, notes = serving.plan_runs(range(3), tmp_path, f"--store-dir {tmp_path}")
    assert not serve and set(train) == set(sst.SETTINGS) - sst.SLOW_SETTINGS
    assert all(f"no stored run with them in --store-dir {tmp_path}" in note for note in notes)
    assert all("training time unknown" in note for note in notes)


def test_run_sst_bounds_seeds(capsys):
    from attnlib.cli import main
    from attnlib.experiments import EXPERIMENTS

    MAX_SST_SEEDS = EXPERIMENTS["sst"].max_seeds
    assert main(["run", "sst", "--seeds", str(MAX_SST_SEEDS + 1), "--out", "/nonexistent-never-written"]) == 2
    assert f"at most {MAX_SST_SEEDS} seeds" in capsys.readouterr().err


def _cli(args, cwd, env_store):
    env = {**os.environ, "PYTHONPATH": str(ROOT), sst_store.ENV_VAR: str(env_store)}
    return subprocess.run([sys.executable, "-m", "attnlib", "run", "sst", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


SERVE = """
from attnlib.experiments import sst
from attnlib.experiments.sst import storage as sst_store
run = sst.load_or_train("SST2", "TC", "unmasked", seeds=(0,))
print(sst_store.store_dir()[1], run.source, run.seeds)
"""


@pytest.mark.skipif(("SST2", "TC", "unmasked") not in STORED, reason="no stored SST2_TC_unmasked run")
def test_stored_runs_are_found_through_the_environment_outside_a_checkout(tmp_path):
    copy = tmp_path / "store"
    run = sst_store.select_seeds(load_run("SST2", "TC", "unmasked", STORE), [0])
    save_run(run, copy)  # seed 0 only: served from here, not from the checkout's three seeds
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), sst_store.ENV_VAR: str(copy)}
    done = subprocess.run([sys.executable, "-c", SERVE], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"${sst_store.ENV_VAR}={copy}", "stored", "[0]"]
    # the same copy with an edited accuracy: attnlib run sst says so in one line, exits 1, trains nothing
    rewrite_npz(copy / "SST2_TC_unmasked.npz", final_test_accuracy=np.array([0.99]))
    done = _cli(["--seeds", "1", "--only", "SST2_TC_unmasked", "--out", "out", "--quiet"], work, copy)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "SST2_TC_unmasked.npz does not have the sha256" in done.stderr
    assert not (work / "out" / "sst" / "metrics.json").exists()


WHEEL_SERVE = """
import attnlib
from attnlib.experiments import sst
from attnlib.experiments.sst import storage as sst_store
run = sst.load_or_train("SST2", "TC", "unmasked", seeds=(0,))
print(attnlib.__file__, sst_store.store_dir()[1], run.source, run.seeds)
"""


@pytest.mark.skipif(("SST2", "TC", "unmasked") not in STORED, reason="no stored SST2_TC_unmasked run")
def test_a_wheel_installed_attnlib_serves_the_stored_runs_through_the_environment(tmp_path):
    """What a pip user has: attnlib installed from its wheel, no checkout, the store named by the environment."""
    from attnlib.data.sst import ENV_VAR as DATA_ENV_VAR
    from attnlib.data.sst import SSTDataError, find_data_dir

    try:
        data = find_data_dir(download=False)
    except SSTDataError as error:
        pytest.skip(f"no SST data here: {error}")
    offline = {**os.environ, "PIP_NO_INDEX": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(tmp_path / "wheel"), str(ROOT)], check=True, timeout=300, env=offline)
    wheel, = (tmp_path / "wheel").glob("attnlib-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
                   check=True, timeout=300, env=offline)
    store = tmp_path / "store"
    save_run(sst_store.select_seeds(load_run("SST2", "TC", "unmasked", STORE), [0]), store)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"PYTHONPATH": str(site), sst_store.ENV_VAR: str(store), DATA_ENV_VAR: str(data)}
    done = subprocess.run([sys.executable, "-c", WHEEL_SERVE], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    where, found, source, seeds = done.stdout.strip().split(maxsplit=3)
    assert Path(where).is_relative_to(site)  # the installed copy, not the checkout
    assert (found, source, seeds) == (f"${sst_store.ENV_VAR}={store}", "stored", "[0]")
    # and the command a pip user runs: served, nothing trained, the folder written
    done = subprocess.run([sys.executable, "-m", "attnlib", "run", "sst", "--seeds", "1", "--only", "SST2_TC_unmasked",
                           "--out", "out", "--quiet"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((work / "out" / "sst" / "metrics.json").read_text(encoding="utf-8"))
    stored = load_run("SST2", "TC", "unmasked", store)
    assert metrics["SST2.Attn-TC.stopped_epoch.unmasked"] == stored.stopped_epoch[0]
    assert metrics["SST2.Attn-TC.test_accuracy.unmasked"] == pytest.approx(stored.final_test_accuracy[0], abs=1e-12)
    assert metrics["provenance"]["git_commit"] == "unknown"  # no checkout around it


def test_data_checks_are_not_run_only_when_there_is_no_data(sst2, monkeypatch):
    """No SST files anywhere (none named, none found, no download): the data checks say so briefly; files
    that are there but fail their pin fail the verification with that error, never "not run"."""
    from attnlib.data.sst import SSTDataError, SSTDataNotFound

    run, _ = sst2

    def no_data(config, download=False):
        raise SSTDataNotFound("SST data not found (looked in ...) and automatic download is disabled. To fix: ...")

    monkeypatch.setattr(sst_verify, "sst_dataset", no_data)
    report = sst_verify.verify_run(run, replay=False)
    assert [report["checks"][n]["status"] for n in ("data", "recompute", "f5", "replay")] == ["not run"] * 4
    assert sst_verify.describe(report) == ("integrity, patience passed; data, recompute, f5 not run "
                                           f"({sst_verify.NO_DATA}); replay not run (replay off)")

    def bad_data(config, download=False):
        raise SSTDataError("SST file /x/train.txt does not match the pinned copy: expected sha256 ...")

    monkeypatch.setattr(sst_verify, "sst_dataset", bad_data)
    with pytest.raises(SSTDataError, match="does not match the pinned copy") as error:
        sst_verify.verify_run(run, replay=False)
    assert not isinstance(error.value, SSTDataNotFound)
