"""Inference: one loader for every checkpoint kind, Taskflow, and the dev-set evaluators.

* :mod:`.predictor`: :func:`~.predictor.load_predictor`, the one backend dispatch (dygraph | packed |
  static) -> :class:`~.predictor.Predictor` (numpy in, numpy out);
* :mod:`.taskflow`: :class:`Taskflow` and one class per task (``text_classification``,
  ``question_answering``), as ``paddlenlp.taskflow``;
* :mod:`.evaluate`: GLUE metrics and SQuAD v1.1 EM / F1 of a checkpoint;
* :mod:`.cli`: ``paddle-binbert predict`` and ``paddle-binbert eval``.

The names below are imported on first access, so that :mod:`paddle_binbert.runtime` can use the
Paddle-free task classes without importing Paddle.
"""

from __future__ import annotations

from ..lazy import lazy_attributes

#: public name -> submodule that defines it
_EXPORTS = {
    "Predictor": "predictor",
    "load_predictor": "predictor",
    "Taskflow": "taskflow.taskflow",
    "evaluate_glue": "evaluate",
    "evaluate_squad": "evaluate",
    "glue_predictions": "evaluate",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
