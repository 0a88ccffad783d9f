"""The tasks a checkpoint is loaded for, and the PaddleNLP class of each.

``sequence_classification`` (:class:`BertForSequenceClassification`), ``question_answering``
(:class:`BertForQuestionAnswering`) and ``base`` (:class:`BertModel`, a backbone).
"""

from __future__ import annotations

from typing import Type

import paddle.nn as nn
from paddlenlp.transformers import BertConfig, BertForQuestionAnswering, BertForSequenceClassification, BertModel

__all__ = ["TASKS", "check_architecture", "normalize_task", "task_of_class"]

#: task name -> PaddleNLP class
TASKS = {
    "sequence_classification": BertForSequenceClassification,
    "question_answering": BertForQuestionAnswering,
    "base": BertModel,
}
_TASK_ALIASES = {
    "text_classification": "sequence_classification",
    "seq_cls": "sequence_classification",
    "qa": "question_answering",
    "bert": "base",
    "backbone": "base",
}
_HEADS = {
    "BertForSequenceClassification": "sequence_classification",
    "BertForQuestionAnswering": "question_answering",
}


def normalize_task(task: str) -> str:
    """Canonical task name: ``sequence_classification``, ``question_answering`` or ``base``.

    ``text_classification`` / ``seq_cls``, ``qa`` and ``bert`` / ``backbone`` are accepted too.
    """
    key = str(task).strip().lower().replace("-", "_")
    key = _TASK_ALIASES.get(key, key)
    if key not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    return key


def task_of_class(cls: Type[nn.Layer]) -> str:
    """The task of a PaddleNLP BERT class (its :data:`TASKS` entry, or that of a base class)."""
    for task, known in TASKS.items():
        if issubclass(cls, known):
            return task
    raise ValueError(f"{cls.__name__} is not one of the supported classes {[c.__name__ for c in TASKS.values()]}")


def check_architecture(config: BertConfig, task: str, source: str, strict: bool) -> None:
    """Refuse a checkpoint whose head is another task's (or absent, when ``strict``)."""
    archs = list(getattr(config, "architectures", None) or [])
    if task == "base" or not archs:
        return
    found = [_HEADS[a] for a in archs if a in _HEADS]
    if found and task not in found:
        raise ValueError(f"{source} holds a {archs[0]} ({found[0]} head), not a {task} model: pass task={found[0]!r}")
    if not found and strict:
        raise ValueError(
            f"{source} holds a {archs[0]} without a {task} head; pass strict=False to start from a freshly "
            "initialised head"
        )
