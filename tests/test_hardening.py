"""Bad input gets one clear error, never a traceback: unknown experiments, bad command-line values,
broken config files, an output folder that cannot be written, an SST sentence that tokenises to
nothing, a learning rate that makes training diverge. And nothing in attnlib loads pickles."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import immutable

import attnlib
from attnlib import cli
from attnlib.cli import main
from attnlib.config import RunConfig, synthetic_preset
from attnlib.data import SSTDataError, sst
from attnlib.experiments.sst import serving
from attnlib.train import TrainingDiverged

TINY = {"data": {"n_nontopic": 40, "n_train": 24, "n_test": 8, "m": 6}, "train": {"epochs": 10}}
"""A config file's content for a synthetic run that takes well under a second to train."""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def only_these(monkeypatch: pytest.MonkeyPatch, **experiments) -> None:
    """What ``attnlib run NAME`` (and ``run all``, in registry order) runs: ``experiments`` maps a name to a
    function of the parsed arguments; any other experiment that runs fails the test."""
    def run(name, args):
        if name not in experiments:
            pytest.fail(f"the experiment {name} ran")
        return experiments[name](args)

    monkeypatch.setattr(cli, "_run_experiment", run)


def refused(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run the command line in-process; (exit code, stderr) of a refusal."""
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code if isinstance(exit_info.code, int) else 1
        if isinstance(exit_info.code, str):
            print(exit_info.code, file=sys.stderr)
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    return code, err


# --------------------------------------------------------------------------- command-line values


@pytest.mark.parametrize("argv, fragments", [
    (["run", "nonsense"], ["invalid choice", "'nonsense'", "synthetic"]),
    (["run", "synthetic", "--seeds", "0"], ["--seeds", "whole number >= 1", "0"]),
    (["run", "synthetic", "--seeds", "abc"], ["--seeds", "whole number >= 1", "'abc'"]),
    (["run", "synthetic", "--seeds", "-3"], ["--seeds", "whole number >= 1"]),
    (["run", "synthetic", "--seeds", "101"], ["attnlib: ", "--seeds is at most 100 for synthetic", "101"]),
    (["run", "beyond", "--seeds", "1000000"], ["attnlib: ", "--seeds is at most 100 for beyond"]),
    (["run", "sst", "--only", "SST2_FC_default,SST3_FC_default"],
     ["attnlib: ", "'SST3_FC_default'", "SST2_FC_default", "SST5_TC_unmasked"]),
    (["cache", "empty"], ["invalid choice", "'empty'", "clear"]),
])
def test_bad_command_line_values(argv, fragments, capsys) -> None:
    _, err = refused(argv, capsys)
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_only_names_settings_without_running_anything(capsys, monkeypatch) -> None:
    """--only is checked before any output folder is made or any setting trains."""
    monkeypatch.setattr(cli, "_run_experiment", lambda name, args: pytest.fail("the experiment ran"))
    code, err = refused(["run", "sst", "--only", "SST2_XX_default"], capsys)
    assert code == 2 and err.startswith("attnlib: ")


# --------------------------------------------------------------------------- config files


@pytest.mark.parametrize("name, text, fragments", [
    ("unknown_section.json", '{"optimizer": {"lr": 0.1}}', ["'optimizer'", "data, model, train"]),
    ("unknown_field.json", '{"train": {"learning_rate": 0.1}}',
     ["train.learning_rate", "TrainConfig allows", "lr", "epochs"]),
    ("wrong_type.json", '{"train": {"epochs": "many"}}', ["TrainConfig.epochs", "int", "'many'"]),
    ("bool_for_int.json", '{"model": {"d_embed": true}}', ["ModelConfig.d_embed", "int", "True"]),
    ("wrong_tuple.json", '{"train": {"freeze": "keys"}}', ["TrainConfig.freeze", "tuple[str, ...]", "'keys'"]),
    ("out_of_range.json", '{"train": {"lr": -1}}', ["TrainConfig.lr", "> 0", "-1"]),
    ("not_a_table.json", '{"model": 3}', ["'model'", "ModelConfig", "3"]),
    ("top_level_list.json", '[1, 2]', ["[1, 2]"]),
    ("invalid.json", '{"train": {"lr": 0.1,}}', ["not valid JSON", "line 1", "column"]),
    ("invalid.toml", '[train]\nlr = = 0.1\n', ["not valid TOML"]),
    ("unknown_field.toml", '[model]\nd_embd = 20\n', ["model.d_embd", "ModelConfig allows", "d_embed"]),
    # JSON alone would keep the last of two values silently; TOML refuses them, and so does the reader
    ("duplicate.json", '{"train": {"lr": 0.1, "epochs": 5, "lr": 0.2}}', ["the key 'lr' appears twice"]),
    ("duplicate_section.json", '{"train": {"lr": 0.1}, "train": {"epochs": 5}}', ["the key 'train' appears twice"]),
    ("duplicate.toml", '[train]\nlr = 0.1\nlr = 0.2\n', ["not valid TOML"]),
])
def test_bad_config_files(name, text, fragments, tmp_path, capsys) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(ValueError) as error:
        RunConfig.from_file(path, synthetic_preset())
    message = str(error.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    code, err = refused(["run", "synthetic", "--config", str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err.strip() == f"attnlib: {message}"
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_missing_config_file_and_config_for_sst(tmp_path, capsys) -> None:
    _, err = refused(["run", "synthetic", "--config", str(tmp_path / "absent.json")], capsys)
    assert "cannot read the config file" in err and "absent.json" in err
    path = write(tmp_path / "ok.json", "{}")
    _, err = refused(["run", "sst", "--config", str(path)], capsys)
    assert "--config applies to synthetic, ablation, beyond" in err


def test_config_files_change_the_base(tmp_path) -> None:
    base = synthetic_preset()
    json_file = write(tmp_path / "c.json", json.dumps({"train": {"lr": 1, "freeze": ["keys"]},
                                                      "model": {"d_embed": 20}, "data": {"m_range": [10, 30]}}))
    toml_file = write(tmp_path / "c.toml", '[train]\nlr = 1\nfreeze = ["keys"]\n[model]\nd_embed = 20\n'
                                           '[data]\nm_range = [10, 30]\n')
    expected = base.replace(train={"lr": 1.0, "freeze": ("keys",)}, model={"d_embed": 20}, data={"m_range": (10, 30)})
    assert RunConfig.from_file(json_file, base) == RunConfig.from_file(toml_file, base) == expected
    assert RunConfig.from_file(json_file, base).config_hash() == expected.config_hash()  # 1 is read as 1.0
    assert RunConfig.from_dict({}, base) == base


def test_every_config_field_type_is_understood() -> None:
    """A field added with a type the config reader cannot check would make it refuse every value."""
    import dataclasses

    from attnlib.config import ModelConfig, SSTDataConfig, SyntheticDataConfig, TrainConfig, _coerce

    parts = (SyntheticDataConfig(), SyntheticDataConfig(m_range=(2, 5)), SSTDataConfig(), SSTDataConfig(m=3),
             ModelConfig(), TrainConfig(), TrainConfig(freeze=("keys", "query"), patience=5))
    for part in parts:
        for f in dataclasses.fields(part):
            value = getattr(part, f.name)
            assert _coerce(value, str(f.type), f.name) == value, (type(part).__name__, f.name)


def test_a_config_file_reaches_the_experiment(tmp_path, monkeypatch, capsys) -> None:
    seen = []
    monkeypatch.setattr(cli, "_run_experiment", lambda name, args: seen.append(args.base))
    path = write(tmp_path / "c.json", json.dumps({"model": {"d_embed": 12}}))
    for name in ("synthetic", "ablation", "beyond"):
        assert main(["run", name, "--config", str(path), "--out", str(tmp_path)]) == 0
    from attnlib.config import ablation_preset

    assert seen == [synthetic_preset().replace(model={"d_embed": 12}), ablation_preset().replace(model={"d_embed": 12}),
                    synthetic_preset().replace(model={"d_embed": 12})]


# --------------------------------------------------------------------------- output folder, divergence


def test_output_folder_under_a_regular_file(tmp_path, capsys) -> None:
    blocker = write(tmp_path / "somefile.txt", "not a folder")
    config = write(tmp_path / "tiny.json", json.dumps(TINY))
    code, err = refused(["run", "synthetic", "--seeds", "1", "--quiet", "--config", str(config),
                         "--out", str(blocker / "out")], capsys)
    assert code == 1 and "attnlib: cannot write to the output folder" in err and str(blocker) in err


def test_divergence_is_one_clear_error(tmp_path, capsys) -> None:
    config = write(tmp_path / "absurd.json", json.dumps({**TINY, "train": {"epochs": 10, "lr": 1e6}}))
    code, err = refused(["run", "synthetic", "--seeds", "1", "--quiet", "--no-cache", "--config", str(config),
                         "--out", str(tmp_path / "out")], capsys)
    assert code == 1 and err.startswith("attnlib: training diverged at epoch") and "learning rate" in err
    assert "query_std" not in err


def test_divergence_from_a_huge_query_names_the_query(tmp_path, capsys) -> None:
    """A huge query makes the scores overflow at any step size: blaming the learning rate would mislead."""
    config = write(tmp_path / "huge_query.json", json.dumps({**TINY, "model": {"query_std": 1e6}}))
    code, err = refused(["run", "synthetic", "--seeds", "1", "--quiet", "--no-cache", "--config", str(config),
                         "--out", str(tmp_path / "out")], capsys)
    assert code == 1 and err.startswith("attnlib: training diverged at epoch")
    assert "model.query_std = 1e+06" in err and "not the learning rate" in err


def test_beyond_refuses_the_fields_its_studies_set_themselves(tmp_path, capsys, monkeypatch) -> None:
    """Each study of run beyond sets its own epochs, recording interval and heads: a config file's value
    would be ignored without a word, so it is refused; other fields reach the studies."""
    only_these(monkeypatch)
    for fields in ({"train": {"epochs": 10}}, {"train": {"record_every": 5}}, {"model": {"head": "TC"}}):
        path = write(tmp_path / "c.json", json.dumps(fields))
        code, err = refused(["run", "beyond", "--config", str(path), "--out", str(tmp_path)], capsys)
        named = next(f"{section}.{name}" for section, table in fields.items() for name in table)
        assert code == 2 and err.startswith(f"attnlib: config file {path}: {named} cannot be changed for beyond")
        assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["run", "nonsense"], ["run", "synthetic", "--config", "{config}"]])
def test_no_traceback_from_the_installed_command(argv, tmp_path) -> None:
    """The same refusals through ``python -m attnlib``: a message on stderr, a non-zero exit, no traceback."""
    config = write(tmp_path / "bad.json", '{"train": {"lr": "fast"}}')
    argv = [a.replace("{config}", str(config)) for a in argv]
    done = subprocess.run([sys.executable, "-m", "attnlib", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "attnlib" in done.stderr and done.stdout == ""


# --------------------------------------------------------------------------- one line for every failure


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnlib: ") and "Traceback" not in err, err
    return lines[0]


def test_an_unwritable_metrics_file_is_refused_before_anything_is_written(tmp_path, capsys) -> None:
    """The whole folder is replaced at the end of a run, so a file in it that cannot be replaced is found
    before training, not after new figures were written."""
    config = write(tmp_path / "tiny.json", json.dumps(TINY))
    folder = tmp_path / "out" / "synthetic"
    folder.mkdir(parents=True)
    write(folder / "metrics.json", "{}")
    with immutable(folder / "metrics.json"):
        code, err = refused(["run", "synthetic", "--seeds", "1", "--quiet", "--config", str(config),
                             "--out", str(tmp_path / "out")], capsys)
    assert code == 1 and str(folder / "metrics.json") in one_line(err) and "cannot write" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["synthetic"]
    assert [p.name for p in folder.iterdir()] == ["metrics.json"] and (folder / "metrics.json").read_text() == "{}"


@pytest.mark.parametrize("error", [SSTDataError("SST file /data/sst/train.txt has 378 of 8544 lines"),
                                   TrainingDiverged("training diverged at epoch 3: the loss is no longer finite")])
def test_a_failure_inside_the_sweep_is_its_own_one_line(error, tmp_path, capsys, monkeypatch) -> None:
    """run sst trains its settings (here one it is told to retrain) through attnlib.sweep, which wraps a
    task's failure; the user sees the failure itself, as when it happens outside a sweep."""
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(serving, "_sst_setting", fail)
    code, err = refused(["run", "sst", "--only", "SST2_FC_default", "--retrain", "--out", str(tmp_path / "out"),
                         "--quiet"], capsys)
    assert code == 1 and one_line(err) == f"attnlib: {error}"
    assert not (tmp_path / "out" / "sst").exists()


def test_sst_files_that_do_not_match_through_run_sst(tmp_path, capsys, monkeypatch) -> None:
    """A truncated train.txt reaches run sst's sweep as a data error: one line naming the file."""
    data = tmp_path / "sst"
    data.mkdir()
    for name in ("train.txt", "dev.txt", "test.txt"):
        write(data / name, "(3 (2 a) (3 good))\n(1 (2 a) (1 bad))\n")  # two lines: far too short
    monkeypatch.setenv("ATTNLIB_DATA_DIR", str(data))
    code, err = refused(["run", "sst", "--only", "SST2_FC_default", "--store", str(tmp_path / "store"),
                         "--out", str(tmp_path / "out"), "--quiet"], capsys)
    assert code == 1 and str(data / "train.txt") in one_line(err)
    assert not (tmp_path / "out" / "sst").exists() and not (tmp_path / "store").exists()


@pytest.mark.skipif(sst.missing_files(sst.shared_data_dir()) != [], reason="needs the pinned SST files beside the checkout")
def test_a_named_data_folder_with_a_changed_label_fails_the_served_run(tmp_path, capsys, monkeypatch) -> None:
    """One label changed in train.txt (same size, other bytes) of the folder $ATTNLIB_DATA_DIR names: serving a
    stored run fails with one line naming the file and the sha256 mismatch, not "not found" or "truncated"."""
    data = tmp_path / "sst"
    shutil.copytree(sst.shared_data_dir(), data)
    train = data / "train.txt"
    raw = train.read_bytes()
    at = raw.index(b"(3 ")
    train.chmod(0o644)  # the shared copy may be read-only
    train.write_bytes(raw[:at] + b"(4 " + raw[at + 3:])
    monkeypatch.setenv("ATTNLIB_DATA_DIR", str(data))
    code, err = refused(["run", "sst", "--only", "SST2_FC_default", "--out", str(tmp_path / "out"), "--quiet"], capsys)
    line = one_line(err)
    assert code == 1 and line.startswith(f"attnlib: SST file {train} does not match the pinned copy: expected sha256")
    assert "not found" not in line and "truncated" not in line
    assert not (tmp_path / "out" / "sst").exists()


def test_without_any_sst_data_serving_says_so_once(tmp_path, monkeypatch) -> None:
    """No folder named and none found: the note says where was looked and which checks that leaves; a named
    folder that lacks its files fails instead."""
    monkeypatch.delenv("ATTNLIB_DATA_DIR", raising=False)
    monkeypatch.setattr(sst, "shared_data_dir", lambda: tmp_path / "nothing")
    from attnlib.experiments.sst.serving import _data_note

    note = _data_note()
    assert note.startswith(f"no SST data found (looked in {tmp_path / 'nothing'}, ") and "\n" not in note
    monkeypatch.setenv("ATTNLIB_DATA_DIR", str(tmp_path / "named"))
    with pytest.raises(SSTDataError, match="named by \\$ATTNLIB_DATA_DIR does not exist"):
        _data_note()


def test_out_naming_a_file_says_it_is_not_a_folder(tmp_path, capsys) -> None:
    blocker = write(tmp_path / "results.txt", "a file")
    for experiment in ("synthetic", "all"):
        code, err = refused(["run", experiment, "--quiet", "--out", str(blocker)], capsys)
        assert code == 1 and one_line(err).endswith(f"{blocker}: it is a file, not a folder"), err


def test_absurd_sizes_are_one_line(tmp_path, capsys) -> None:
    config = write(tmp_path / "huge.json", json.dumps({**TINY, "model": {"d_embed": 10**9}}))
    code, err = refused(["run", "synthetic", "--seeds", "1", "--quiet", "--no-cache", "--config", str(config),
                         "--out", str(tmp_path / "out")], capsys)
    assert code == 1 and one_line(err).startswith("attnlib: not enough memory for this run")
    assert "model.d_embed" in err and not (tmp_path / "out" / "synthetic").exists()


def test_a_folder_that_cannot_be_read_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    """Permission errors (data, cache or output folders) name the path; root reads anything, so the
    error is raised by the experiment here."""
    def unreadable(args):
        raise PermissionError(13, "Permission denied", "/data/sst/train.txt")

    only_these(monkeypatch, synthetic=unreadable)
    code, err = refused(["run", "synthetic", "--out", str(tmp_path)], capsys)
    assert code == 1 and one_line(err) == "attnlib: /data/sst/train.txt: Permission denied"


CHILD = """
import os, signal, sys, time

import attnlib.experiments.base as base
from attnlib import files
from attnlib.cli import main

phase, argv = sys.argv[1], sys.argv[2:]
# Ctrl-C as in a terminal, even when the test runner itself was started in the background (a shell without
# job control starts background commands with SIGINT ignored, and Python then installs no handler)
signal.signal(signal.SIGINT, signal.default_int_handler)


def pause():
    if phase == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    print("paused", flush=True)
    time.sleep(600)  # until the test interrupts it


train, write_text, writes = base.cached_train, files.write_text, []
if phase == "training":  # every experiment trains through train_grid, which calls base.cached_train
    base.cached_train = lambda *args, **kwargs: pause() or train(*args, **kwargs)
else:  # writing, kill: the third file of the new folder
    files.write_text = lambda *args: (writes.append(1), len(writes) == 3 and pause(), write_text(*args))[-1]
raise SystemExit(main(argv))
"""
"""``attnlib run ...`` in a child process that stops (phase ``training``: in its first training call;
``writing``: at its third output file) and says ``paused`` until it is interrupted, or kills itself
with SIGKILL at its third output file (phase ``kill``)."""


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _previous_run(tmp_path: Path) -> tuple[Path, list[str]]:
    """A previous run's folder tmp/out/synthetic (files that a new run replaces or does not write), and
    the arguments of a new run into the same folder."""
    folder = tmp_path / "out" / "synthetic"
    folder.mkdir(parents=True)
    write(folder / "metrics.json", '{"seeds": [0], "provenance": {"config_hashes": {"Attn-FC": "previous"}}}\n')
    write(folder / "losses.csv", "epoch,loss\n0,1.4\n")
    write(folder / "only_in_the_previous_run.csv", "a table the new run does not write\n")
    config = write(tmp_path / "tiny.json", json.dumps(TINY))
    return folder, ["run", "synthetic", "--seeds", "1", "--quiet", "--config", str(config), "--out", str(tmp_path / "out")]


@pytest.mark.parametrize("phase, previous", [("training", False), ("writing", True)])
def test_sigint_is_one_line_exit_130_and_no_half_written_folder(phase, previous, tmp_path) -> None:
    """Ctrl-C while training or while writing the outputs: exit 130, the one line "attnlib: interrupted",
    and the output folder is the previous run's (byte for byte) or absent, with nothing left beside it."""
    folder, argv = _previous_run(tmp_path)
    if not previous:
        shutil.rmtree(folder.parent)
    before = tree(folder) if previous else None
    env = {**os.environ, "ATTNLIB_CACHE_DIR": str(tmp_path / "empty-cache")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, phase, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    try:
        assert child.stdout.readline() == "paused\n", child.stderr.read()
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=300)
    finally:
        child.kill()
    assert child.returncode == 130 and err == "attnlib: interrupted\n", err
    if previous:
        assert tree(folder) == before
    else:
        assert not folder.exists()
    assert sorted(p.name for p in folder.parent.iterdir()) == (["synthetic"] if previous else [])


def test_a_run_killed_while_writing_leaves_the_previous_folder_and_the_next_run_cleans_up(tmp_path) -> None:
    folder, argv = _previous_run(tmp_path)
    before = tree(folder)
    done = subprocess.run([sys.executable, "-c", CHILD, "kill", *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == -signal.SIGKILL
    assert tree(folder) == before
    left = [p.name for p in folder.parent.iterdir() if p.name != "synthetic"]
    assert len(left) == 1 and left[0].startswith(".synthetic.partial-")  # hidden, and never read as a result
    assert main(argv) == 0
    assert sorted(p.name for p in folder.parent.iterdir()) == ["synthetic"]
    assert not (folder / "only_in_the_previous_run.csv").exists() and (folder / "f1_sen_curves.png").exists()
    hashes = json.loads((folder / "metrics.json").read_text())["provenance"]["config_hashes"]
    assert all(json.loads(p.read_text()).get("provenance", {}).get("config_hashes", hashes) == hashes
               for p in folder.glob("*.json"))


# --------------------------------------------------------------------------- progress outside a terminal


def test_training_outside_a_terminal_prints_progress_lines_unless_quiet(tiny_datasets, capsys, monkeypatch) -> None:
    """stderr is not a terminal under pytest: each line names what trains, the epoch and the elapsed time
    (every update here, with the interval at 0); ``quiet`` silences them."""
    from attnlib import train as engine
    from attnlib.config import ModelConfig, TrainConfig

    monkeypatch.setattr(engine, "PROGRESS_EVERY_S", 0.0)
    model, config = ModelConfig(head="FC", d_embed=4, d_key=4), TrainConfig(lr=0.1, epochs=120)
    engine.train(model, config, tiny_datasets[:2], [0, 1])
    name = tiny_datasets[0].name
    assert capsys.readouterr().err.splitlines() == [f"{name} Attn-FC, seeds 0-1: epoch {n} of 120, 0 s" for n in (50, 100)]
    engine.train(model, config, tiny_datasets[:2], [0, 1], quiet=True)
    assert capsys.readouterr().err == ""


def test_run_prints_progress_lines_and_quiet_silences_them(tmp_path, capsys, monkeypatch) -> None:
    from attnlib import train as engine

    monkeypatch.setattr(engine, "PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr(cli, "_write_result", lambda folder, result: None)  # the figures are not what is tested
    config = write(tmp_path / "tiny.json", json.dumps({**TINY, "train": {"epochs": 60}}))
    argv = ["run", "synthetic", "--seeds", "1", "--no-cache", "--config", str(config), "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(re.fullmatch(r"synthetic.* Attn-(FC|TC|TL), seed 0: epoch 50 of 60, \d+ s", line)
                         for line in lines), lines
    assert main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- isolation of the tests


def test_tests_never_use_the_user_cache() -> None:
    import conftest

    from attnlib import cache

    assert cache.cache_dir() == conftest.CACHE_DIR
    assert conftest.CACHE_DIR in sst.cache_data_dir().parents  # where a download would go
    assert Path.home() / ".cache" not in sst.cache_data_dir().parents


def test_the_network_is_refused_and_loopback_works() -> None:
    import conftest

    blocked = conftest._network["BLOCKED"]
    with pytest.raises(OSError, match="must not use the network"):
        socket.create_connection(("192.0.2.1", 80), timeout=5)  # TEST-NET-1: never routed
    with pytest.raises(OSError, match="must not use the network"):
        socket.getaddrinfo("nlp.stanford.edu", 443)
    assert len(blocked) == 2
    blocked.clear()  # refused on purpose: this test must not fail for it
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            connection, _ = server.accept()
            with connection:
                client.sendall(b"ok")
                assert connection.recv(2) == b"ok"
    assert not blocked


def test_child_processes_are_refused_the_network_too() -> None:
    done = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('192.0.2.1', 80), timeout=5)"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "must not use the network" in done.stderr


# --------------------------------------------------------------------------- SST sentences


def test_an_sst_sentence_that_tokenises_to_nothing_names_file_and_line(tmp_path, monkeypatch) -> None:
    """Line 2 of train.txt holds only punctuation: the error names the file's path and the line."""
    good = "(3 (2 a) (3 good))\n(1 (2 a) (1 bad))\n"
    write(tmp_path / "train.txt", "(3 (3 fine) (3 film))\n(4 (2 .) (4 ...))\n(0 (0 awful))\n")
    write(tmp_path / "dev.txt", good)
    write(tmp_path / "test.txt", good)
    monkeypatch.setattr(sst, "verify_files", lambda directory: None)  # these files are not the pinned ones
    with pytest.raises(SSTDataError) as error:
        sst.load_sst("SST2", tmp_path, download=False)
    assert f"{tmp_path.resolve() / 'train.txt'}, line 2:" in str(error.value)
    assert "has no tokens" in str(error.value)


# --------------------------------------------------------------------------- loading saved data


def unsafe_loads(tree: ast.AST) -> list[str]:
    """Pickle imports, ``torch.load`` without ``weights_only=True``, ``np.load(..., allow_pickle=True)``,
    ``pd.read_pickle`` and ``joblib.load`` in one module's syntax tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(n and n.split(".")[0] in ("pickle", "cPickle", "dill", "shelve", "cloudpickle") for n in names):
                found.append(f"line {node.lineno}: imports a pickle module")
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        keywords = {k.arg: k.value for k in node.keywords}
        def constant(key, keywords=keywords):  # None unless a literal
            return getattr(keywords.get(key), "value", None)
        if name.endswith("torch.load") and constant("weights_only") is not True:
            found.append(f"line {node.lineno}: torch.load without weights_only=True")
        if name.split(".")[-1] == "load" and "allow_pickle" in keywords and constant("allow_pickle") is not False:
            found.append(f"line {node.lineno}: {name} with allow_pickle not False")
        if name.split(".")[-1] == "read_pickle" or name == "joblib.load":
            found.append(f"line {node.lineno}: {name}")
    return found


def test_the_unsafe_load_check_catches_what_it_should() -> None:
    bad = ["import pickle", "from cloudpickle import loads", "torch.load('x')", "torch.load('x', weights_only=False)",
           "np.load('x', allow_pickle=True)", "numpy.load('x', allow_pickle=flag)", "pd.read_pickle('x')",
           "joblib.load('x')"]
    good = ["import torch, numpy as np", "torch.load('x', weights_only=True)", "np.load('x', allow_pickle=False)",
            "np.load('y')", "json.loads('{}')"]
    assert all(len(unsafe_loads(ast.parse(line))) == 1 for line in bad)
    assert all(unsafe_loads(ast.parse(line)) == [] for line in good)


def test_nothing_in_attnlib_loads_pickles() -> None:
    package = Path(attnlib.__file__).parent
    problems = {str(path.relative_to(package)): found for path in sorted(package.rglob("*.py"))
                if (found := unsafe_loads(ast.parse(path.read_text(encoding="utf-8"))))}
    assert not problems, problems


def test_run_all_interrupted_keeps_the_previous_out_together(tmp_path, capsys, monkeypatch) -> None:
    """run all writes several experiment folders and a scorecard computed from them: interrupted after
    the first experiment, OUT still holds the previous experiments with the previous scorecard (and the
    entries run all does not write, here a bench folder), and nothing is left beside it."""
    import pandas as pd

    out = tmp_path / "out"
    for name in ("synthetic", "ablation", "bench"):
        (out / name).mkdir(parents=True)
        write(out / name / "metrics.json", f'"previous {name}"\n')
    write(out / "scorecard.md", "previous scorecard\n")
    before = tree(out)

    def experiment(name, interrupt=False):
        def run(args):
            if interrupt:
                raise KeyboardInterrupt
            folder = cli._output_folder(args.out, name)
            cli._write_outputs(folder, {"t": pd.DataFrame({"a": [1]})}, {}, {"new": name})
            return folder
        return run

    only_these(monkeypatch, synthetic=experiment("synthetic"), ablation=experiment("ablation", interrupt=True))
    assert main(["run", "all", "--out", str(out), "--quiet"]) == 130
    assert capsys.readouterr().err == "attnlib: interrupted\n"
    assert tree(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_run_all_refuses_to_replace_the_current_folder(tmp_path, capsys, monkeypatch) -> None:
    """run all replaces OUT as a whole: the folder a user works in (or one holding it) is refused."""
    only_these(monkeypatch)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    for out in (".", str(tmp_path)):
        code, err = refused(["run", "all", "--out", out, "--quiet"], capsys)
        assert code == 1 and "must not be the current folder" in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
