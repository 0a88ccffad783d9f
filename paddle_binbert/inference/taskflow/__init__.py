"""Taskflow: one class per task, as in ``paddlenlp.taskflow``.

* :mod:`.task`: the base :class:`~.task.Task` and the option checks (numpy only);
* :mod:`.text_classification`, :mod:`.question_answering`: the tasks (numpy only);
* :mod:`.taskflow`: :class:`Taskflow`, which loads a model through
  :func:`paddle_binbert.inference.predictor.load_predictor` and runs one task on it (Paddle).

The task modules import neither Paddle nor PaddleNLP (:mod:`paddle_binbert.runtime` uses them);
``Taskflow`` is imported on first access.
"""

from __future__ import annotations

from typing import Dict, Type

from ...lazy import lazy_attributes
from .question_answering import QuestionAnsweringTask
from .task import Task
from .text_classification import TextClassificationTask

#: Taskflow task name -> its class
TASK_CLASSES: Dict[str, Type[Task]] = {cls.name: cls for cls in (TextClassificationTask, QuestionAnsweringTask)}

__all__ = ["TASK_CLASSES", "QuestionAnsweringTask", "Task", "Taskflow", "TextClassificationTask"]

__getattr__, __dir__ = lazy_attributes(__name__, {"Taskflow": "taskflow"})
