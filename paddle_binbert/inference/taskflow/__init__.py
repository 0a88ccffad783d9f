"""Taskflow: one class per task, as in ``paddlenlp.taskflow``.

* :mod:`.task`: the base :class:`~.task.Task` and the option checks (numpy only);
* :mod:`.text_classification`, :mod:`.question_answering`: the tasks (numpy only);
* :mod:`.front`: :data:`~.front.TASK_CLASSES` and :class:`~.front.TaskFrontEnd`, what the front ends
  share (numpy only);
* :mod:`.taskflow`: :class:`Taskflow`, which loads a model through
  :func:`paddle_binbert.inference.predictor.load_predictor` and runs one task on it (Paddle).

The task modules import neither Paddle nor PaddleNLP (:mod:`paddle_binbert.runtime` uses them);
``Taskflow`` is imported on first access.
"""

from __future__ import annotations

from ...lazy import lazy_attributes
from .front import TASK_CLASSES, TaskFrontEnd
from .question_answering import QuestionAnsweringTask
from .task import Task
from .text_classification import TextClassificationTask

__all__ = ["TASK_CLASSES", "QuestionAnsweringTask", "Task", "TaskFrontEnd", "Taskflow", "TextClassificationTask"]

__getattr__, __dir__ = lazy_attributes(__name__, {"Taskflow": "taskflow"})
