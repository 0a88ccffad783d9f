"""Every file of a pack / export output gets the mode a plain ``open()`` gives under the process's
umask (0644 with umask 022), not the 0600 of safetensors' or tempfile's private temporary files; the
output folder gets the mode of a plain ``mkdir`` (0755)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import paddle
import pytest
from paddlenlp.transformers import BertForSequenceClassification, BertTokenizer

from paddle_binbert.export import pack_model
from paddle_binbert.export.static import export_static
from tests.tiny import tiny_bert_config

from .helpers import FIXTURES, save_student


@pytest.fixture
def umask():
    """Set the process umask for the test and restore it afterwards."""
    saved = os.umask(0o022)
    try:
        yield lambda mask: os.umask(mask)
    finally:
        os.umask(saved)


def _modes(folder: Path):
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}
    return stat.S_IMODE(folder.stat().st_mode), files


@pytest.mark.parametrize("mask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_packed_files_follow_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    student = save_student(tmp_path / "student")
    out = pack_model(student, tmp_path / "packed", tokenizer=BertTokenizer(str(FIXTURES / "vocab.txt")))
    folder_mode, files = _modes(out)
    assert "model.safetensors" in files and "config.json" in files and "vocab.txt" in files
    assert files == {name: file_mode for name in files}, {k: oct(v) for k, v in files.items()}
    assert folder_mode == dir_mode
    pack_model(student, out)  # a replaced output too
    folder_mode, files = _modes(out)
    assert files == {name: file_mode for name in files} and folder_mode == dir_mode


def test_exported_files_are_0644(tmp_path, umask):
    paddle.seed(5)
    ckpt = tmp_path / "fp"
    BertForSequenceClassification(tiny_bert_config(vocab_size=1353, max_position_embeddings=64)).save_pretrained(
        str(ckpt)
    )
    BertTokenizer(str(FIXTURES / "vocab.txt")).save_pretrained(str(ckpt))
    os.chmod(ckpt / "vocab.txt", 0o600)  # a private source file: its copy still gets the normal mode
    out = Path(export_static(ckpt, tmp_path / "exported")["dir"])
    folder_mode, files = _modes(out)
    assert {"inference.pdiparams", "export_info.json", "config.json", "vocab.txt"} <= set(files)
    assert files == {name: 0o644 for name in files}, {k: oct(v) for k, v in files.items()}
    assert folder_mode == 0o755
