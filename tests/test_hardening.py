"""Bad input gets one clear error, never a traceback: unknown experiments, bad command-line values,
broken config files, an output folder that cannot be written, an SST sentence that tokenises to
nothing, a learning rate that makes training diverge. And nothing in attnlib loads pickles."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import attnlib
from attnlib import cli
from attnlib.cli import main
from attnlib.config import RunConfig, synthetic_preset
from attnlib.data import SSTDataError, sst

TINY = {"data": {"n_nontopic": 40, "n_train": 24, "n_test": 8, "m": 6}, "train": {"epochs": 10}}
"""A config file's content for a synthetic run that takes well under a second to train."""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


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


@pytest.mark.parametrize("argv", [["run", "nonsense"], ["run", "synthetic", "--config", "{config}"]])
def test_no_traceback_from_the_installed_command(argv, tmp_path) -> None:
    """The same refusals through ``python -m attnlib``: a message on stderr, a non-zero exit, no traceback."""
    config = write(tmp_path / "bad.json", '{"train": {"lr": "fast"}}')
    argv = [a.replace("{config}", str(config)) for a in argv]
    done = subprocess.run([sys.executable, "-m", "attnlib", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "attnlib" in done.stderr and done.stdout == ""


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
        constant = lambda key: getattr(keywords.get(key), "value", None)  # noqa: E731 - None unless a literal
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
