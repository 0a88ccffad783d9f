"""Fixtures of the SQuAD fine-tuning / distillation tests: the tiny SQuAD files and a tiny QA checkpoint."""

import pytest

from .helpers import make_qa_checkpoint, write_squad_files


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(train.json, dev.json) of :func:`~tests.squad.helpers.write_squad_files`, one pair per test module."""
    return write_squad_files(tmp_path_factory.mktemp("squad"))


@pytest.fixture(scope="module")
def qa_checkpoint(tmp_path_factory) -> str:
    """A random tiny ``BertForQuestionAnswering`` folder (the teacher / backbone), one per test module."""
    path = tmp_path_factory.mktemp("qa_checkpoint")
    make_qa_checkpoint(path)
    return str(path)
