"""Atomic writers with a failure injected mid-write (issue 25, "Also"): the length-configuration
search (its cache and reports) and data augmentation leave the previous output intact, complete and
byte-identical, with no temporary file beside it; a rerun then finishes as an uninterrupted one.

The failure is a full disk (:class:`~tests.robustness.helpers.DiskFull`): the chosen file takes a
few bytes, then ``write`` raises ``OSError(ENOSPC)``. Pack and export are covered by
``test_pack_export_safety.py``; checkpoints and convert by their own tests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from paddlenlp.transformers import BertForSequenceClassification

from paddle_binbert.data.augment import augment_glue_file
from paddle_binbert.length_adaptive import search
from tests.data.test_augment import augmenter, glove_file, mlm_dir  # noqa: F401 (fixtures)
from tests.length_adaptive.helpers import quick_search, sst2_args
from tests.tiny import save_tiny_checkpoint

from .helpers import FIXTURES, DiskFull, snapshot

SST2 = FIXTURES / "glue" / "SST-2"


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("classifier")
    save_tiny_checkpoint(folder, FIXTURES / "vocab.txt", BertForSequenceClassification, num_labels=2)
    return folder


def search_argv(checkpoint: Path, out: Path, *extra: str) -> list:
    return ["--checkpoint", str(checkpoint), *sst2_args(SST2, out, "--max_seq_length", "24"),
            *quick_search(population_size=3, evo_iter=1), *extra]  # fmt: skip


def named(*names: str):
    """A ``DiskFull`` match for the files ``names`` and their temporary siblings (``.NAME.*.tmp``)."""
    return lambda path: any(os.path.basename(path) in (n, n + ".tmp") or os.path.basename(path).startswith(f".{n}.")
                            for n in names)  # fmt: skip


# ---------------------------------------------------------------------- length-configuration search


@pytest.mark.parametrize(
    "target",
    ["search_cache.json", "all_configs.csv", "pareto.csv", "pareto.md", "pareto.png", "pick.json"],
)
def test_search_failing_mid_write_leaves_the_previous_output_intact(classifier, tmp_path, monkeypatch, target):
    out = tmp_path / "search"
    assert search.main(search_argv(classifier, out)) == 0
    before = snapshot(out)
    assert "search_cache.json" in before and "pareto.md" in before
    # a second search with another seed extends the cache (new configurations) and rewrites every report
    disk = DiskFull(named(target), budget=40).install(monkeypatch)
    with pytest.raises(OSError, match="injected"):
        search.main(search_argv(classifier, out, "--seed", "7"))
    monkeypatch.undo()
    assert disk.failed and all(os.path.dirname(p) == str(out) for p in disk.failed)
    after = snapshot(out)
    if target == "search_cache.json":
        assert after == before  # the failed first put changed nothing
    else:  # the cache may hold the new evaluations; the report being written is the old one
        assert after[target] == before[target]
        assert json.loads(after["search_cache.json"])["meta"] == json.loads(before["search_cache.json"])["meta"]
    assert sorted(after) == sorted(before), "a temporary file was left behind"
    # the rerun completes, and replays the evaluations the failed run cached
    assert search.main(search_argv(classifier, out, "--seed", "7")) == 0
    pick = json.loads((out / "pick.json").read_text())
    assert pick["num_evaluated"] >= 4 and (out / "pareto.md").read_text().endswith("speedup.\n")
    assert sorted(snapshot(out)) == sorted(before)


# ---------------------------------------------------------------------- data augmentation


def _task_copy(folder: Path) -> Path:
    folder.mkdir()
    for name in ("train.tsv", "dev.tsv"):
        (folder / name).write_bytes((SST2 / name).read_bytes())
    return folder


def _augment(augmenter, glue_dir: Path, seed: int):  # noqa: F811 (the fixture, passed in)
    return augment_glue_file(augmenter, str(glue_dir), "SST-2", N=4, seed=seed, max_examples=6,
                             examples_per_step=2, progress=False)  # fmt: skip


def test_augmentation_failing_mid_write_keeps_the_previous_file_and_resumes(augmenter, tmp_path, monkeypatch):  # noqa: F811
    glue_dir = _task_copy(tmp_path / "SST-2")
    _augment(augmenter, glue_dir, seed=1)
    previous = (glue_dir / "train_aug.tsv").read_bytes()
    whole = _augment(augmenter, _task_copy(tmp_path / "whole"), seed=2)
    expected = Path(whole.output).read_bytes()
    assert expected != previous and whole.rows_written > 6

    # a new file (seed 2) over the previous one; the disk fills up half-way through it
    disk = DiskFull(named("train_aug.tsv"), budget=len(expected) // 2).install(monkeypatch)
    with pytest.raises(OSError, match="injected"):
        _augment(augmenter, glue_dir, seed=2)
    monkeypatch.undo()
    tmp = glue_dir / "train_aug.tsv.tmp"
    assert disk.failed == [str(tmp)]
    assert (glue_dir / "train_aug.tsv").read_bytes() == previous  # the previous output, intact
    state = json.loads((glue_dir / "train_aug.tsv.tmp.progress").read_text())
    assert 0 < state["examples"] < 6 and tmp.stat().st_size == len(expected) // 2 > state["bytes"]
    assert expected.startswith(tmp.read_bytes()[: state["bytes"]])  # complete blocks, then a half-written one

    resumed = _augment(augmenter, glue_dir, seed=2)
    assert resumed.resumed_from == state["examples"]  # the half-written block is dropped and redone
    assert (glue_dir / "train_aug.tsv").read_bytes() == expected
    assert resumed.rows_written == whole.rows_written
    assert sorted(p.name for p in glue_dir.iterdir()) == ["dev.tsv", "train.tsv", "train_aug.tsv"]


def test_augmentation_without_resume_after_a_failure_starts_over(augmenter, tmp_path, monkeypatch):  # noqa: F811
    """``resume=False`` after the failure: the stale temporary file is rewritten from the start."""
    glue_dir = _task_copy(tmp_path / "SST-2")
    disk = DiskFull(named("train_aug.tsv"), budget=200).install(monkeypatch)
    with pytest.raises(OSError, match="injected"):
        _augment(augmenter, glue_dir, seed=3)
    monkeypatch.undo()
    assert disk.failed and not (glue_dir / "train_aug.tsv").exists()
    stats = augment_glue_file(augmenter, str(glue_dir), "SST-2", N=4, seed=3, max_examples=6,
                              examples_per_step=2, progress=False, resume=False)  # fmt: skip
    assert stats.resumed_from == 0
    whole = _augment(augmenter, _task_copy(tmp_path / "whole"), seed=3)
    assert (glue_dir / "train_aug.tsv").read_bytes() == Path(whole.output).read_bytes()
