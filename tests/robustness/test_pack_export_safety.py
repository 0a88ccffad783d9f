"""Output folders of ``paddle-binbert pack`` / ``export``: never delete the input, refuse unrelated
non-empty folders unless ``--overwrite``, replace previous outputs atomically, and leave the previous
output untouched (and no temporary folder) when writing fails half-way."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import pytest
import safetensors.numpy
from paddlenlp.transformers import BertForSequenceClassification, BertTokenizer

from paddle_binbert import atomic
from paddle_binbert.cli import main as cli_main
from paddle_binbert.export import OutputFolderError, is_packed_dir, pack_model
from paddle_binbert.export import static as static_mod
from paddle_binbert.export.static import EXPORT_INFO_NAME, export_static, is_static_dir
from paddle_binbert.format.packed import load_packed
from tests.tiny import tiny_bert_config

from .helpers import FIXTURES, save_student, snapshot


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(student model, folder it was saved to); tests copy the folder where they modify things."""
    root = tmp_path_factory.mktemp("robust_pack")
    folder = root / "student"
    student = save_student(folder)
    return student, folder


def _copy_student(saved, dest: Path) -> Path:
    import shutil

    shutil.copytree(saved[1], dest)
    return dest


def _leftovers(parent: Path, name: str):
    """Temporary / backup folders of ``name`` left in ``parent``."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


# ------------------------------------------------------------------------------ pack: the input is never deleted
@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_cli_pack_into_folder_containing_the_student_refuses(saved, tmp_path, capsys, flags):
    sandbox = tmp_path / "sandbox"
    _copy_student(saved, sandbox / "student")
    (sandbox / "other").mkdir()
    (sandbox / "other" / "notes.txt").write_text("unrelated work")
    before = snapshot(tmp_path)
    assert cli_main(["pack", str(sandbox / "student"), str(sandbox), *flags]) == 2
    err = capsys.readouterr().err
    assert str(sandbox) in err and "contains the input" in err and "delete the input" in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_cli_pack_into_the_student_folder_itself_refuses(saved, tmp_path, capsys, flags):
    student_dir = _copy_student(saved, tmp_path / "student")
    before = snapshot(tmp_path)
    assert cli_main(["pack", str(student_dir), str(student_dir), *flags]) == 2
    err = capsys.readouterr().err
    assert str(student_dir) in err and "is the input" in err and "another output folder" in err
    assert snapshot(tmp_path) == before


def test_library_pack_with_source_never_replaces_the_input(saved, tmp_path):
    student, _ = saved
    student_dir = _copy_student(saved, tmp_path / "student")
    before = snapshot(tmp_path)
    with pytest.raises(OutputFolderError, match="is the input"):
        pack_model(student, student_dir, source=student_dir, overwrite=True)
    with pytest.raises(OutputFolderError, match="contains the input"):
        pack_model(student, tmp_path, source=student_dir, overwrite=True)
    # without ``source`` the student folder is still protected: it is no previous packed model
    with pytest.raises(OutputFolderError, match="not a previous packed model"):
        pack_model(student, student_dir)
    assert snapshot(tmp_path) == before


def test_pack_inside_the_student_folder(saved, tmp_path):
    """A new folder (or a previous pack) inside the student is fine; an unrelated sub-folder is part of
    the input and is refused even with overwrite=True."""
    student, _ = saved
    student_dir = _copy_student(saved, tmp_path / "student")
    out = pack_model(student, student_dir / "packed", source=student_dir)
    assert is_packed_dir(out)
    pack_model(student, student_dir / "packed", source=student_dir)  # a previous pack: replaced
    (student_dir / "data").mkdir()
    (student_dir / "data" / "train.tsv").write_text("a\t1\n")
    before = snapshot(tmp_path)
    with pytest.raises(OutputFolderError, match="inside the input"):
        pack_model(student, student_dir / "data", source=student_dir, overwrite=True)
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------ pack: unrelated folders
def test_pack_refuses_unrelated_folder_unless_overwrite(saved, tmp_path, capsys):
    student, student_dir = saved
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(OutputFolderError) as info:
        pack_model(student, out)
    message = str(info.value)
    assert str(out) in message and "notes.txt" in message and "--overwrite" in message
    assert (out / "notes.txt").read_text() == "keep me"
    assert cli_main(["pack", str(student_dir), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "notes.txt").is_file()
    assert cli_main(["pack", str(student_dir), str(out), "--overwrite"]) == 0
    assert is_packed_dir(out) and not (out / "notes.txt").exists()
    load_packed(out)


def test_pack_refuses_a_file_and_a_pack_with_subfolders(saved, tmp_path):
    student, _ = saved
    target = tmp_path / "model.bin"
    target.write_bytes(b"\0" * 10)
    with pytest.raises(OutputFolderError, match="is a file"):
        pack_model(student, target)
    assert target.read_bytes() == b"\0" * 10
    out = pack_model(student, tmp_path / "packed")
    (out / "extra").mkdir()  # pack never writes sub-folders: someone else's files
    with pytest.raises(OutputFolderError, match="not a previous packed model"):
        pack_model(student, out)
    assert (out / "extra").is_dir()


def test_previous_pack_is_replaced_and_no_overwrite_refuses(saved, tmp_path, capsys):
    student, student_dir = saved
    out = pack_model(student, tmp_path / "packed")
    (out / "marker.txt").write_text("from the previous pack")  # files only: still a previous pack
    assert cli_main(["pack", str(student_dir), str(out)]) == 0
    assert not (out / "marker.txt").exists() and is_packed_dir(out)
    assert _leftovers(tmp_path, "packed") == []
    with pytest.raises(FileExistsError, match="no_overwrite"):
        pack_model(student, out, overwrite=False)
    assert cli_main(["pack", str(student_dir), str(out), "--no_overwrite"]) == 2
    assert "--no_overwrite" in capsys.readouterr().err


# ------------------------------------------------------------------------------ pack: atomic replacement
def test_interrupted_pack_leaves_previous_output_intact(saved, tmp_path, monkeypatch):
    student, _ = saved
    out = pack_model(student, tmp_path / "model", tokenizer=BertTokenizer(str(FIXTURES / "vocab.txt")))
    before = snapshot(out)

    def failing_save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial safetensors data")  # half-written file, then the failure
        raise OSError(28, "No space left on device (injected)")

    monkeypatch.setattr(safetensors.numpy, "save_file", failing_save_file)
    student.classifier.bias.set_value(student.classifier.bias + 1.0)  # a different model
    try:
        with pytest.raises(OSError, match="injected"):
            pack_model(student, out)
    finally:
        student.classifier.bias.set_value(student.classifier.bias - 1.0)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folder left behind
    load_packed(out)


def test_replacement_without_renameat2(saved, tmp_path, monkeypatch):
    """Where the atomic exchange is unavailable, the rename pair replaces the folder and cleans up."""
    student, _ = saved
    out = pack_model(student, tmp_path / "model")
    (out / "old.txt").write_text("old")
    monkeypatch.setattr(atomic, "exchange_paths", lambda a, b: False)
    pack_model(student, out)
    assert not (out / "old.txt").exists() and is_packed_dir(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_output_replaced_meanwhile_is_refused_at_the_swap(saved, tmp_path, monkeypatch):
    """The destination is checked again right before the swap: files that appeared there while the
    model was written are not deleted."""
    student, _ = saved
    out = tmp_path / "model"
    real_save = safetensors.numpy.save_file

    def save_then_someone_writes(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        out.mkdir()
        (out / "report.txt").write_text("written by another program")

    monkeypatch.setattr(safetensors.numpy, "save_file", save_then_someone_writes)
    with pytest.raises(OutputFolderError, match="report.txt"):
        pack_model(student, out)
    assert (out / "report.txt").read_text() == "written by another program"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# ------------------------------------------------------------------------------ static export
@pytest.fixture(scope="module")
def fp_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("robust_export") / "fp"
    paddle.seed(3)
    model = BertForSequenceClassification(tiny_bert_config(vocab_size=1353, max_position_embeddings=64))
    model.save_pretrained(str(folder))
    BertTokenizer(str(FIXTURES / "vocab.txt")).save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_cli_export_never_replaces_the_checkpoint(fp_checkpoint, tmp_path, capsys, flags):
    import shutil

    sandbox = tmp_path / "sandbox"
    ckpt = Path(shutil.copytree(fp_checkpoint, sandbox / "ckpt"))
    before = snapshot(tmp_path)
    assert cli_main(["export", str(ckpt), str(sandbox), *flags]) == 2
    assert "contains the input" in capsys.readouterr().err
    assert cli_main(["export", str(ckpt), str(ckpt), *flags]) == 2
    assert "is the input" in capsys.readouterr().err
    weights = next(ckpt.glob("*.pdparams"))
    assert cli_main(["export", str(weights), str(ckpt), "--config", str(ckpt), *flags]) == 2  # bare weight file
    assert "contains the input" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_export_refuses_unrelated_folder_replaces_previous_and_survives_failure(
    fp_checkpoint, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "exported"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(OutputFolderError, match="not a previous static export"):
        export_static(fp_checkpoint, out)
    assert cli_main(["export", str(fp_checkpoint), str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--overwrite" in err and (out / "notes.txt").read_text() == "keep me"

    assert cli_main(["export", str(fp_checkpoint), str(out), "--overwrite"]) == 0
    assert is_static_dir(out) and not (out / "notes.txt").exists()
    export_static(fp_checkpoint, out)  # a previous export: replaced without asking
    info = json.loads((out / EXPORT_INFO_NAME).read_text())
    assert info["format"] == "paddle_binbert.static"
    before = snapshot(out)

    def failing_save(model, prefix, task=None, fold_weights=True):
        Path(str(prefix) + ".json").write_text("{ half a program")
        raise RuntimeError("tracing failed (injected)")

    monkeypatch.setattr(static_mod, "save_inference_model", failing_save)
    with pytest.raises(RuntimeError, match="injected"):
        export_static(fp_checkpoint, out, max_seq_length=16)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]
    ids = np.array([[2, 5, 7, 0]], dtype="int64")
    assert static_mod.StaticPredictor(out)(ids).shape[0] == 1
