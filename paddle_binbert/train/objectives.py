"""What a training step minimises: the loss strategies of :class:`~paddle_binbert.train.trainer.BinBertTrainer`.

* :class:`TaskLoss`: the model's own loss (teacher fine-tuning): cross-entropy, MSE for regression
  (STS-B), ``(CE(z_start, y_start) + CE(z_end, y_end)) / 2`` for SQuAD spans (Devlin et al., 2019);
* :class:`DistillLoss`: the distillation objective of a method's recipe against a teacher
  (:func:`~paddle_binbert.distill.losses.compute_distill_loss`: TinyBERT / BiBERT / BiT / BinaryBERT
  terms); evaluation uses the hard-label loss and never runs the teacher;
* :class:`LengthDropLoss`: LengthDrop around either (Kim & Cho 2021; Dynamic-TinyBERT), the sandwich
  loss ``(loss_full + KL_smallest + sum_k KL_random_k) / (num_sandwich + 2)`` with the wrapped
  objective's loss as ``loss_full``
  (:func:`~paddle_binbert.length_adaptive.lengthdrop.sandwich_loss`).

:func:`build_objective` picks one from a run's settings (task | distill, each with or without the
sandwich).

Extractive QA (``BertForQuestionAnswering``) is recognised from the model's outputs: the logits are
``(start, end)``, the hard labels the batch's ``start_positions`` / ``end_positions``.

A half-width student (BinaryBERT, :mod:`paddle_binbert.splitting.half_width`) is distilled from the
full teacher: hidden states as usual, attention scores against the teacher heads it kept
(:func:`~paddle_binbert.splitting.half_width.teacher_heads_for`); Q/K/V direction matching is refused.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, Optional, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from ..distill.losses import (
    DistillLossConfig,
    DistillOutputs,
    check_teacher_heads,
    compute_distill_loss,
    hard_label_loss,
    span_hard_label_loss,
)
from ..length_adaptive.lengthdrop import LengthDropConfig, Logits, sandwich_loss
from ..models.quantize import attention_records, get_bert, set_recording
from ..splitting.half_width import teacher_heads_for

__all__ = [
    "SPAN_LABELS",
    "DistillLoss",
    "LengthDropLoss",
    "TaskLoss",
    "TrainingObjective",
    "build_objective",
    "collect_outputs",
    "needs_hidden_states",
    "needs_records",
    "pop_labels",
    "task_loss_fn",
]

#: Batch keys holding the targets of extractive QA (BERT's SQuAD head).
SPAN_LABELS = ("start_positions", "end_positions")


def needs_records(cfg: DistillLossConfig) -> bool:
    """Whether the recipe uses attention scores or Q/K/V (so attention recording must be on)."""
    w = cfg.weights()
    return any(k in w for k in ("att_mse", "query", "key", "value"))


def needs_hidden_states(cfg: DistillLossConfig) -> bool:
    """Whether the recipe compares hidden states."""
    w = cfg.weights()
    return "hid_mse" in w or "hid_distance" in w


def collect_outputs(model: nn.Layer, inputs: Dict[str, Any], cfg: DistillLossConfig) -> DistillOutputs:
    """Run ``model`` on ``inputs`` and gather what ``cfg`` needs: logits, hidden states (embedding
    output first) and, from the recording attention layers, masked scores and pre-quantization Q/K/V.

    A QA model's outputs become span outputs: ``logits`` = start logits, ``end_logits``, and
    ``logit_mask`` = the batch's ``attention_mask`` (if any)."""
    out = model(**inputs, output_hidden_states=needs_hidden_states(cfg), return_dict=True)
    if hasattr(out, "start_logits"):
        result = DistillOutputs(
            logits=out.start_logits, end_logits=out.end_logits, logit_mask=inputs.get("attention_mask")
        )
    else:
        result = DistillOutputs(logits=out.logits if hasattr(out, "logits") else out[0])
    if needs_hidden_states(cfg):
        result.hidden_states = list(out.hidden_states)
    if needs_records(cfg):
        records = attention_records(model)
        result.scores = [r.scores for r in records]
        result.queries = [r.query for r in records]
        result.keys = [r.key for r in records]
        result.values = [r.value for r in records]
    return result


def pop_labels(inputs: Dict[str, Any]) -> Any:
    """Remove the targets from the batch ``inputs``: ``labels``, or ``(start_positions, end_positions)``
    for QA (None when a position is missing)."""
    if any(key in inputs for key in SPAN_LABELS):
        positions: Tuple[Any, ...] = tuple(inputs.pop(key, None) for key in SPAN_LABELS)
        return None if any(p is None for p in positions) else positions
    return inputs.pop("labels", None)


def task_loss_fn(model: nn.Layer, inputs: Dict[str, Any]) -> Tuple[paddle.Tensor, Logits]:
    """The model's own task loss on a labelled batch (cross-entropy, MSE for regression, mean
    start/end cross-entropy for spans) and its logits (``(start, end)`` for spans)."""
    out = model(**inputs, return_dict=True)
    if getattr(out, "logits", None) is not None:
        return out.loss, out.logits
    return out.loss, (out.start_logits, out.end_logits)


class TrainingObjective:
    """A loss strategy: the training loss of a batch, the evaluation loss, the loss parts to log.

    :class:`~paddle_binbert.train.trainer.BinBertTrainer` calls :meth:`setup` once (after its own
    set-up), :meth:`training_loss` in training steps, :meth:`evaluation_loss` in PaddleNLP's
    evaluation loop and :meth:`pop_logs` at every logging step.
    """

    def setup(self, model: nn.Layer, seed: int) -> None:
        """Prepare to train ``model``; ``seed`` seeds any sampling of the objective."""

    def training_loss(self, model: nn.Layer, inputs: Dict[str, Any]) -> Tuple[paddle.Tensor, Logits]:
        """``(loss, logits)`` of a training batch (``inputs`` holds the labels); ``logits`` the full
        model's (``(start, end)`` for QA)."""
        raise NotImplementedError

    def evaluation_loss(self, model: nn.Layer, inputs: Dict[str, Any]) -> Tuple[Optional[paddle.Tensor], Any]:
        """``(loss, outputs)`` of a dev batch, ``outputs[0]`` the loss and ``outputs[1:]`` the logits
        (what PaddleNLP's ``prediction_step`` expects)."""
        raise NotImplementedError

    def pop_logs(self) -> Dict[str, float]:
        """The loss parts averaged since the last call (``loss_<part>``), then forgotten."""
        return {}


class TaskLoss(TrainingObjective):
    """The model's own loss, in training (:func:`task_loss_fn`) and evaluation (teacher fine-tuning)."""

    def training_loss(self, model: nn.Layer, inputs: Dict[str, Any]) -> Tuple[paddle.Tensor, Logits]:
        """:func:`task_loss_fn`."""
        return task_loss_fn(model, inputs)

    def evaluation_loss(self, model: nn.Layer, inputs: Dict[str, Any]) -> Tuple[Optional[paddle.Tensor], Any]:
        """The model's outputs, its loss first (as PaddleNLP's ``Trainer.compute_loss``)."""
        outputs = model(**inputs)
        if isinstance(outputs, dict):
            return outputs["loss"], outputs
        return (outputs[0] if isinstance(outputs, tuple) else outputs), outputs


class DistillLoss(TrainingObjective):
    """Distil ``teacher`` into the trained model (the student) with ``config``.

    Both models must be quantized with :func:`~paddle_binbert.quantize_model` (the FP teacher with
    the ``fp`` preset, which leaves its outputs unchanged) so that their attention layers can record
    scores and Q/K/V. The per-term losses are logged as ``loss_<term>``.

    Args:
        teacher: the fine-tuned (quantized with ``fp``) teacher; put in eval mode, no gradients.
        config: the distillation objective.
        is_regression: one-output regression head (STS-B).
    """

    def __init__(self, teacher: nn.Layer, config: DistillLossConfig, is_regression: bool = False) -> None:
        self.teacher = teacher
        self.config = config
        self.is_regression = is_regression
        self.num_heads = 0
        self.teacher_heads: Optional[Any] = None
        self._sums: Dict[str, float] = defaultdict(float)
        self._count = 0

    def setup(self, model: nn.Layer, seed: int) -> None:
        """Check the widths (hidden-state terms need equal ones) and the teacher heads a half-width
        student kept, switch attention recording on where the recipe needs it, freeze the teacher."""
        student_bert, teacher_bert = get_bert(model), get_bert(self.teacher)
        if student_bert.config.hidden_size != teacher_bert.config.hidden_size and needs_hidden_states(self.config):
            raise ValueError(
                f"student hidden size {student_bert.config.hidden_size} != teacher "
                f"{teacher_bert.config.hidden_size}: hidden-state terms need equal widths"
            )
        self.num_heads = student_bert.config.num_attention_heads
        # a half-width student (BinaryBERT): per layer, the teacher heads its heads are
        record = needs_records(self.config)
        self.teacher_heads = teacher_heads_for(model, self.teacher) if record else None
        check_teacher_heads(self.config, self.teacher_heads)
        set_recording(model, record)
        set_recording(self.teacher, record)
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.stop_gradient = True

    def training_loss(self, model: nn.Layer, inputs: Dict[str, Any]) -> Tuple[paddle.Tensor, Logits]:
        """The distillation objective of one batch for the full-length student: ``(loss, logits)``,
        ``logits`` the student's (``(start, end)`` for QA); its terms are added to the logging window.
        ``inputs`` may hold the labels (they are taken out of a copy)."""
        inputs = dict(inputs)
        labels = pop_labels(inputs)
        student_out = collect_outputs(model, inputs, self.config)
        with paddle.no_grad():
            teacher_out = collect_outputs(self.teacher, inputs, self.config)
        loss, terms = compute_distill_loss(
            self.config,
            student_out,
            teacher_out,
            labels,
            self.is_regression,
            self.num_heads,
            teacher_heads=self.teacher_heads,
        )
        for name, value in terms.items():
            if name != "total":
                self._sums[name] += value
        self._count += 1
        if student_out.end_logits is not None:
            return loss, (student_out.logits, student_out.end_logits)
        return loss, student_out.logits

    def evaluation_loss(self, model: nn.Layer, inputs: Dict[str, Any]) -> Tuple[Optional[paddle.Tensor], Any]:
        """The hard-label loss (span loss for QA) of ``model`` alone: ``(loss, (loss, *logits))``."""
        inputs = dict(inputs)
        labels = pop_labels(inputs)
        out = model(**inputs, return_dict=True)
        if hasattr(out, "start_logits"):
            loss = None
            if labels is not None:
                mask = inputs.get("attention_mask")
                loss = span_hard_label_loss(out.start_logits, out.end_logits, labels[0], labels[1], mask)
            return loss, (loss, out.start_logits, out.end_logits)
        logits = out.logits
        loss = hard_label_loss(logits, labels, self.is_regression) if labels is not None else None
        return loss, (loss, logits)

    def pop_logs(self) -> Dict[str, float]:
        """Mean of every distillation term since the last call, keyed ``loss_<term>``."""
        if not self._count:
            return {}
        logs = {f"loss_{name}": total / self._count for name, total in self._sums.items()}
        self._sums.clear()
        self._count = 0
        return logs


class LengthDropLoss(TrainingObjective):
    """LengthDrop training (sandwich rule, inplace distillation, LayerDrop) around ``full``.

    Per step: ``(loss_full + KL_smallest + sum_k KL_random_k) / (num_sandwich + 2)``, ``loss_full``
    being ``full``'s training loss of the full-length model and each sub-model trained towards the
    full model's detached output distribution (start and end averaged for QA; Drop-and-Restore gives
    every token a logit). A teacher, if any, only sees full-length inputs. The parts are logged as
    ``loss_la_<part>`` after ``full``'s own. Evaluation is ``full``'s.

    Args:
        full: the full model's objective (:class:`TaskLoss` or :class:`DistillLoss`).
        config: :class:`~paddle_binbert.length_adaptive.LengthDropConfig` (default: 2 / 0.2 / 0.2).
    """

    def __init__(self, full: TrainingObjective, config: Optional[LengthDropConfig] = None) -> None:
        self.full = full
        self.config = config or LengthDropConfig()
        self.rng = np.random.default_rng(42)
        self._sums: Dict[str, float] = defaultdict(float)
        self._count = 0

    def setup(self, model: nn.Layer, seed: int) -> None:
        """Set ``full`` up; seed the sub-model sampler with ``seed``."""
        self.rng = np.random.default_rng(seed)
        self.full.setup(model, seed)

    def training_loss(self, model: nn.Layer, inputs: Dict[str, Any]) -> Tuple[paddle.Tensor, Logits]:
        """The sandwich loss of one step and the full model's logits."""
        loss, logits, terms = sandwich_loss(model, inputs, self.full.training_loss, self.config, self.rng)
        for name, value in terms.items():
            if name != "total":
                self._sums[name] += value
        self._count += 1
        return loss, logits

    def evaluation_loss(self, model: nn.Layer, inputs: Dict[str, Any]) -> Tuple[Optional[paddle.Tensor], Any]:
        """``full``'s evaluation loss (the full-length model)."""
        return self.full.evaluation_loss(model, inputs)

    def pop_logs(self) -> Dict[str, float]:
        """``full``'s parts, then the mean of each sandwich part since the last call (``loss_la_<part>``)."""
        logs = self.full.pop_logs()
        if self._count:
            logs.update({f"loss_la_{k}": v / self._count for k, v in self._sums.items()})
            self._sums.clear()
            self._count = 0
        return logs


def build_objective(
    teacher: Optional[nn.Layer] = None,
    config: Optional[DistillLossConfig] = None,
    is_regression: bool = False,
    length_drop: Optional[LengthDropConfig] = None,
) -> TrainingObjective:
    """The objective of a run: :class:`DistillLoss` of ``teacher`` with ``config`` when a teacher is
    given (distillation), else :class:`TaskLoss` (fine-tuning); inside :class:`LengthDropLoss`
    when ``length_drop`` is set (``--length_adaptive``)."""
    if teacher is None:
        full: TrainingObjective = TaskLoss()
    else:
        if config is None:
            raise ValueError("distillation needs a DistillLossConfig (config=...) with its teacher")
        full = DistillLoss(teacher, config, is_regression=is_regression)
    return full if length_drop is None else LengthDropLoss(full, length_drop)
