"""Atomic output files and folders: a failed or interrupted write leaves the previous file (or folder)
whole and no temporary file behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import immutable

from attnlib.files import (
    PARTIAL,
    PREVIOUS,
    atomic_write,
    check_replaceable,
    clean_leftovers,
    replaced_folder,
    write_json,
    write_text,
)


def test_write_text_and_json_replace_the_file(tmp_path):
    path = tmp_path / "out.json"
    write_text(path, "old\n")
    write_json(path, {"b": 1, "a": [2]}, sort_keys=True)
    assert json.loads(path.read_text()) == {"a": [2], "b": 1} and path.read_text().endswith("\n")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_write_that_fails_midway_keeps_the_previous_file(tmp_path):
    path = tmp_path / "metrics.json"
    write_text(path, "previous")

    def half_then_fail(target):
        target.write_text("half")
        raise KeyboardInterrupt  # as if the run were killed while writing

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


# --------------------------------------------------------------------------- whole folders


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def _previous(tmp_path):
    folder = tmp_path / "out" / "synthetic"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text("previous metrics")
    (folder / "old_only.csv").write_text("a table the new run does not write")
    return folder


def test_a_replaced_folder_holds_only_the_new_files(tmp_path):
    folder = _previous(tmp_path)
    with replaced_folder(folder) as staging:
        assert staging.parent == folder.parent and staging.name.startswith(".synthetic.partial-")
        write_text(staging / "metrics.json", "new metrics")
        assert _tree(folder)["metrics.json"] == "previous metrics"  # untouched until the block ends
    assert _tree(folder) == {"metrics.json": "new metrics"}
    assert sorted(p.name for p in folder.parent.iterdir()) == ["synthetic"]  # nothing left beside it


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError, ValueError])
def test_an_interrupted_folder_leaves_the_previous_one_whole(tmp_path, failure):
    folder = _previous(tmp_path)
    before = _tree(folder)
    with pytest.raises(failure):
        with replaced_folder(folder) as staging:
            write_text(staging / "metrics.json", "new metrics")
            write_text(staging / "f1.csv", "new table")
            raise failure
    assert _tree(folder) == before and sorted(p.name for p in folder.parent.iterdir()) == ["synthetic"]


def test_an_interrupted_first_run_leaves_no_folder(tmp_path):
    folder = tmp_path / "out" / "synthetic"
    with pytest.raises(KeyboardInterrupt):
        with replaced_folder(folder) as staging:
            write_text(staging / "metrics.json", "new")
            raise KeyboardInterrupt
    assert list(folder.parent.iterdir()) == []


def test_leftovers_of_a_killed_run_are_cleaned_and_a_half_swapped_folder_comes_back(tmp_path):
    """A process killed with -9 runs no cleanup: what it left (a partly built folder, or the previous
    folder moved aside between the two renames of a swap) is handled by the next replacement."""
    folder = _previous(tmp_path)
    before = _tree(folder)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # a process id that no longer runs
    partial = folder.with_name(f".synthetic{PARTIAL}{dead}-abc")
    partial.mkdir()
    (partial / "metrics.json").write_text("half of a new run")
    folder.rename(folder.with_name(f".synthetic{PREVIOUS}{dead}-def"))  # killed between the two renames
    assert clean_leftovers(folder) == [partial]
    assert _tree(folder) == before and sorted(p.name for p in folder.parent.iterdir()) == ["synthetic"]
    alive = folder.with_name(f".synthetic{PARTIAL}{os.getpid()}-ghi")  # a run still going on is left alone
    alive.mkdir()
    assert clean_leftovers(folder) == [] and alive.is_dir()


def test_keep_others_carries_entries_the_new_folder_lacks(tmp_path):
    out = tmp_path / "out"
    (out / "bench").mkdir(parents=True)
    (out / "bench" / "results.json").write_text("kept")
    (out / "synthetic").mkdir()
    (out / "synthetic" / "stale.csv").write_text("replaced as a whole")
    with replaced_folder(out, keep_others=True) as staging:
        (staging / "synthetic").mkdir()
        write_text(staging / "synthetic" / "metrics.json", "new")
    assert _tree(out) == {"bench/results.json": "kept", "synthetic/metrics.json": "new"}


def test_check_replaceable_refuses_what_cannot_be_replaced(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        check_replaceable(blocker / "out" / "synthetic")  # a folder under a regular file, even as root
    with pytest.raises(NotADirectoryError):
        check_replaceable(blocker)
    folder = _previous(tmp_path)
    check_replaceable(folder)
    with immutable(folder / "metrics.json"):
        with pytest.raises(PermissionError) as error:
            check_replaceable(folder)
        assert error.value.filename == str(folder / "metrics.json")
        check_replaceable(folder, entries=["old_only.csv"])  # only what is replaced is checked
