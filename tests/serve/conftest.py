"""Fixtures of the serving tests: tiny packed students (classification and QA) and their Predictors."""

import json
import socket
from pathlib import Path

import pytest

from paddle_binbert.runtime import library as runtime_library

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VOCAB = FIXTURES / "vocab.txt"
LABELS = {0: "negative", 1: "neutral", 2: "positive"}


@pytest.fixture(scope="session")
def lib():
    """The runtime's shared library (the test is skipped where it cannot be built, e.g. no compiler)."""
    try:
        return runtime_library.load_library()
    except runtime_library.RuntimeUnavailableError as err:
        pytest.skip(str(err))


def _pack(student, folder: Path) -> Path:
    from paddlenlp.transformers import BertTokenizer

    from paddle_binbert.export import pack_model

    return pack_model(student, folder, tokenizer=BertTokenizer(vocab_file=str(VOCAB)))


def _config(**kw):
    from paddlenlp.transformers import BertTokenizer

    from tests.engine import tiny_config

    return tiny_config(vocab=len(BertTokenizer(vocab_file=str(VOCAB)).vocab), max_pos=64, **kw)


@pytest.fixture(scope="session")
def cls_folder(tmp_path_factory, lib) -> Path:
    """A BiBERT classifier (3 labels with names) packed with the test vocabulary."""
    from paddlenlp.transformers import BertForSequenceClassification

    from tests.engine import make_student

    student = make_student("bibert", BertForSequenceClassification, config=_config())
    student.classifier.weight.set_value(student.classifier.weight * 40.0)  # predictions far from ties
    folder = _pack(student, tmp_path_factory.mktemp("serve_cls") / "packed")
    (folder / "id2label.json").write_text(json.dumps({str(k): v for k, v in LABELS.items()}), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def qa_folder(tmp_path_factory, lib) -> Path:
    """A BiT question-answering student packed with the test vocabulary."""
    from paddlenlp.transformers import BertForQuestionAnswering

    from tests.engine import make_student

    return _pack(
        make_student("bit", BertForQuestionAnswering, config=_config()), tmp_path_factory.mktemp("serve_qa") / "p"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
