"""Atomic output files: a failed write leaves the previous file whole and no temporary file behind."""

from __future__ import annotations

import json

import pytest

from attnlib.files import atomic_write, write_json, write_text


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
