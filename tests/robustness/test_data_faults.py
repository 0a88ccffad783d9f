"""Fault sweep (issue 25), items 12 and 13: GLUE files without examples and very long TSV rows.

A header-only (or empty) ``train.tsv`` / ``dev.tsv`` is refused before anything is trained, by the
shared validation (``check_glue_files``, used by run_glue, task_distill, eval and search-length)
and by ``load_glue_features``, with the file named. A row longer than the csv module's 131,072
character field limit is read like any other row, and its format errors still name file and line.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from paddle_binbert.data.glue import (
    GlueFormatError,
    check_glue_files,
    load_glue_features,
    read_glue_examples,
)
from tests.tiny import load_run_glue

GLUE = Path(__file__).resolve().parents[1] / "fixtures" / "glue"
SST2_HEADER = "sentence\tlabel\n"


def sst2_copy(tmp_path: Path, **files: str) -> Path:
    """The SST-2 fixture folder with some files replaced (name without .tsv -> content)."""
    folder = tmp_path / "SST-2"
    shutil.copytree(GLUE / "SST-2", folder)
    for name, content in files.items():
        (folder / f"{name}.tsv").write_text(content, encoding="utf-8")
    return folder


class WordTokenizer:
    """Enough of a tokenizer for ``convert_examples_to_features``."""

    def __call__(self, texts, pairs=None, **kwargs):
        ids = [[1] + [2] * min(len(t.split()), 10) + [3] for t in texts]
        return {"input_ids": ids, "token_type_ids": [[0] * len(row) for row in ids]}


@pytest.mark.parametrize(
    "split, content, problem",
    [
        ("train", SST2_HEADER, "only a header row"),
        ("train", SST2_HEADER + "\n  \n", "only a header row"),
        ("dev", SST2_HEADER, "only a header row"),
        ("train", "", "the file is empty"),
    ],
)
def test_header_only_or_empty_split_is_refused(tmp_path, split, content, problem):
    folder = sst2_copy(tmp_path, **{split: content})
    path = str(folder / f"{split}.tsv")
    with pytest.raises(GlueFormatError) as info:
        check_glue_files(folder, "sst-2")
    assert info.value.path == path and problem in str(info.value) and "at least one example" in str(info.value)
    with pytest.raises(GlueFormatError) as info:
        load_glue_features(folder, "SST-2", split, WordTokenizer(), 16)
    assert info.value.path == path
    if content:  # (an empty file has no header: the reader's own error)
        assert "at least one example" in str(info.value)
        assert read_glue_examples(folder, "SST-2", split) == []  # the plain reader stays lenient
    other = "dev" if split == "train" else "train"
    assert check_glue_files(folder, "SST-2", [other], require_examples=True)  # only the bad file is refused


def test_headerless_cola_needs_one_row(tmp_path):
    folder = tmp_path / "CoLA"
    folder.mkdir()
    (folder / "train.tsv").write_text("\n\n", encoding="utf-8")
    (folder / "dev.tsv").write_text((GLUE / "CoLA" / "dev.tsv").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(GlueFormatError, match="train.tsv.*no example rows"):
        check_glue_files(folder, "CoLA")
    (folder / "train.tsv").write_text("src\t1\t\tOne sentence.", encoding="utf-8")
    assert set(check_glue_files(folder, "CoLA")) == {"train", "dev"}


@pytest.mark.parametrize("split", ["train", "dev"])
def test_run_glue_fails_before_training(tmp_path, capsys, split):
    run_glue = load_run_glue()
    folder = sst2_copy(tmp_path, **{split: SST2_HEADER})
    out = tmp_path / "out"
    argv = ["--task_name", "SST-2", "--data_dir", str(folder), "--output_dir", str(out), "--max_steps", "1"]
    with pytest.raises(SystemExit) as info:
        run_glue.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert str(folder / f"{split}.tsv") in err and "only a header row" in err
    assert not out.exists()  # no partial checkpoint


def test_task_distill_fails_before_loading(tmp_path, capsys):
    from paddle_binbert.distill.task_distill import main

    folder = sst2_copy(tmp_path, train=SST2_HEADER)
    argv = ["--teacher_path", str(tmp_path / "teacher"), "--task_name", "SST-2", "--data_dir", str(folder)]
    argv += ["--output_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert str(folder / "train.tsv") in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- 13: rows beyond the csv field limit


def test_row_longer_than_csv_field_limit_is_read(tmp_path):
    long_sentence = ("word " * 40_000).strip()  # 199,999 characters > 131,072
    folder = sst2_copy(tmp_path, dev=SST2_HEADER + f"short one\t1\n{long_sentence}\t0\nlast\t1\n")
    examples = read_glue_examples(folder, "SST-2", "dev")
    assert [e.label for e in examples] == [1, 0, 1]
    assert examples[1].text_a == long_sentence
    features = load_glue_features(folder, "SST-2", "dev", WordTokenizer(), 16)
    assert len(features) == 3


def test_long_malformed_row_names_file_and_line(tmp_path):
    long_sentence = "x" * 200_000
    folder = sst2_copy(tmp_path, dev=SST2_HEADER + f"ok\t1\n{long_sentence}\tmaybe\n")
    with pytest.raises(GlueFormatError) as info:
        read_glue_examples(folder, "SST-2", "dev")
    assert (info.value.path, info.value.line, info.value.field) == (str(folder / "dev.tsv"), 3, "label")


def test_line_endings_and_quotes_unchanged(tmp_path):
    """The csv-free reader splits rows exactly as csv.QUOTE_NONE did: \\n, \\r\\n and \\r end a row,
    quotes are text."""
    folder = sst2_copy(tmp_path, dev=SST2_HEADER + 'a "quoted\tword\r\nb\t0\rc" d\t1\n')
    with pytest.raises(GlueFormatError, match=r"dev.tsv, line 2.*label 'word' is not in the label list"):
        read_glue_examples(folder, "SST-2", "dev")
    folder = sst2_copy(tmp_path / "2", dev=SST2_HEADER + 'a "quoted\t1\r\nb\t0\rc" d\t1\n')
    assert [(e.text_a, e.label) for e in read_glue_examples(folder, "SST-2", "dev")] == [
        ('a "quoted', 1),
        ("b", 0),
        ('c" d', 1),
    ]
