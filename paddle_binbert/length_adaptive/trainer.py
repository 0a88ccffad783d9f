"""LengthDrop training in PaddleNLP's Trainer: a mixin and :class:`LengthAdaptiveTrainer`.

The mixin replaces the training loss by :func:`~paddle_binbert.length_adaptive.lengthdrop.sandwich_loss`
(Kim & Cho 2021): ``(loss_full + KL_smallest + sum_k KL_random_k) / (num_sandwich + 2)``.
A trainer with its own full-model loss (e.g. distillation) calls :meth:`LengthDropMixin.length_drop_loss`
with that loss as ``full_loss_fn``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, Optional

import numpy as np
import paddle.nn as nn

from ..trainer import BinBertTrainer
from .lengthdrop import FullLossFn, LengthDropConfig, sandwich_loss

__all__ = ["LengthDropMixin", "LengthAdaptiveTrainer", "task_loss_fn"]


def task_loss_fn(model: nn.Layer, inputs: Dict[str, Any]):
    """Full-model loss of a plain fine-tuning step: the model's own task loss (cross-entropy, MSE for
    regression, mean start/end cross-entropy for spans) and its logits."""
    out = model(**inputs, return_dict=True)
    if getattr(out, "logits", None) is not None:
        return out.loss, out.logits
    return out.loss, (out.start_logits, out.end_logits)


class LengthDropMixin:
    """Adds LengthDrop (sandwich rule, inplace distillation, LayerDrop) to a Trainer subclass.

    Call :meth:`init_length_drop` from ``__init__``; use :meth:`length_drop_loss` in ``compute_loss``
    during training. The averaged parts of the loss are logged as ``loss_la_<part>`` (mixed into a
    :class:`~paddle_binbert.trainer.BinBertTrainer`, whose ``mean_over_ranks`` averages them over ranks).
    """

    length_drop: Optional[LengthDropConfig] = None

    def init_length_drop(self, config: Optional[LengthDropConfig], seed: int = 42) -> None:
        """Enable LengthDrop with ``config`` (None disables it); ``seed`` seeds the sub-model sampler."""
        self.length_drop = config
        self._la_rng = np.random.default_rng(seed)
        self._la_sums: Dict[str, float] = defaultdict(float)
        self._la_count = 0

    def length_drop_loss(self, model: nn.Layer, inputs: Dict[str, Any], full_loss_fn: FullLossFn):
        """The sandwich loss of one step; returns ``(loss, full_logits)``."""
        loss, logits, terms = sandwich_loss(model, inputs, full_loss_fn, self.length_drop, self._la_rng)
        for name, value in terms.items():
            if name != "total":
                self._la_sums[name] += value
        self._la_count += 1
        return loss, logits

    def pop_length_drop_logs(self) -> Dict[str, float]:
        """Mean of each loss part since the last call (and over the data-parallel ranks), keyed
        ``loss_la_<part>``."""
        if not getattr(self, "_la_count", 0):
            return {}
        logs = {f"loss_la_{k}": v / self._la_count for k, v in self._la_sums.items()}
        logs = {k: round(v, 6) for k, v in self.mean_over_ranks(logs).items()}
        self._la_sums.clear()
        self._la_count = 0
        return logs


class LengthAdaptiveTrainer(LengthDropMixin, BinBertTrainer):
    """:class:`~paddle_binbert.trainer.BinBertTrainer` training a length-adaptive model with LengthDrop.

    Args:
        *args, **kwargs: those of :class:`~paddle_binbert.trainer.BinBertTrainer`.
        length_drop: :class:`LengthDropConfig` (default: the spec's 2 / 0.2 / 0.2).
    """

    def __init__(self, *args: Any, length_drop: Optional[LengthDropConfig] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.init_length_drop(length_drop or LengthDropConfig(), seed=self.args.seed)

    def compute_loss(self, model: nn.Layer, inputs: Dict[str, Any], return_outputs: bool = False):
        """Sandwich loss in training; the model's plain loss in evaluation."""
        if not model.training or self.length_drop is None:
            return super().compute_loss(model, inputs, return_outputs=return_outputs)
        loss, logits = self.length_drop_loss(model, inputs, task_loss_fn)
        return (loss, (loss, logits)) if return_outputs else loss

    def log(self, logs: Dict[str, float], **kwargs: Any) -> None:
        """Add the averaged sandwich parts to the training log."""
        if "loss" in logs:
            logs.update(self.pop_length_drop_logs())
        super().log(logs, **kwargs)
