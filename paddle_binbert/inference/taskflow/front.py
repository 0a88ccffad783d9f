"""What the two front ends share (numpy only, no Paddle).

:class:`paddle_binbert.Taskflow` (any checkpoint, through
:func:`~paddle_binbert.inference.predictor.load_predictor`) and :class:`paddle_binbert.runtime.Predictor`
(packed folders, without Paddle) each load a model their own way; then both build the same
:class:`~.task.Task` on it with :meth:`TaskFrontEnd.build_task` and hand every call to it.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Type, Union

from .question_answering import QuestionAnsweringTask
from .task import ForwardFn, Task
from .text_classification import EncodeFn, TextClassificationTask, read_id2label

__all__ = ["TASK_CLASSES", "TaskFrontEnd"]

#: Taskflow task name -> its class
TASK_CLASSES: Dict[str, Type[Task]] = {cls.name: cls for cls in (TextClassificationTask, QuestionAnsweringTask)}


class TaskFrontEnd:
    """Base of a front end that runs one task (:attr:`task`, a key of :data:`TASK_CLASSES`) on a loaded model.

    Calling it runs :attr:`task_instance`. The task's settings (``batch_size``, ``max_length``,
    ``top_k``, ``id2label``, ``num_labels``, ``doc_stride`` ...) read as attributes of the front end,
    and setting one (``flow.top_k = 3``) sets it on :attr:`task_instance`.
    """

    task: str
    task_instance: Task

    def build_task(
        self,
        forward: ForwardFn,
        tokenizer: Any,
        batch_size: int,
        max_length: int,
        options: Mapping[str, Any],
        *,
        encode: Optional[EncodeFn] = None,
        num_labels: int = 2,
        folder: Union[str, os.PathLike] = ".",
        label_fallback: Any = None,
    ) -> Task:
        """Build :attr:`task_instance` for :attr:`task` on a loaded model.

        Args:
            forward, tokenizer, batch_size, max_length: see :class:`~.task.Task` (``max_length``
                already capped at the model's positions).
            options: the task's options, checked by :meth:`Task.check <.task.Task.check>`.
            encode, num_labels: classification: the tokenizer call and the classifier's outputs.
            folder, label_fallback: classification: label names come from the ``id2label`` option,
                else ``folder/id2label.json``, else ``label_fallback``
                (:func:`~.text_classification.read_id2label`).
        """
        if self.task == TextClassificationTask.name:
            if encode is None:
                raise TypeError("text_classification needs encode=")
            id2label = read_id2label(options.get("id2label"), folder, label_fallback, num_labels)
            instance: Task = TextClassificationTask(
                forward, tokenizer, batch_size, max_length, encode, num_labels, id2label, options.get("top_k")
            )
        else:
            instance = TASK_CLASSES[self.task](forward, tokenizer, batch_size, max_length, **options)
        self.task_instance = instance
        return instance

    def __call__(self, inputs: Any) -> List[Dict[str, Any]]:
        """One result dict per input, in Taskflow's format (see
        :class:`~.text_classification.TextClassificationTask` and
        :class:`~.question_answering.QuestionAnsweringTask`)."""
        return self.task_instance(inputs)

    def __getattr__(self, name: str) -> Any:
        """The task's settings (``batch_size``, ``max_length``, ``top_k``, ``doc_stride`` ...)."""
        if name == "task_instance":  # not built yet (__init__ failed half-way)
            raise AttributeError(name)
        return getattr(self.task_instance, name)

    def __setattr__(self, name: str, value: Any) -> None:
        """A task setting goes to :attr:`task_instance`; anything else to the front end itself."""
        instance = self.__dict__.get("task_instance")
        if (
            instance is not None
            and name not in self.__dict__
            and not hasattr(type(self), name)
            and hasattr(instance, name)
        ):
            setattr(instance, name, value)
        else:
            object.__setattr__(self, name, value)
