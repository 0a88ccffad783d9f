"""`DistillationTrainer`: PaddleNLP's Trainer with a teacher and the distillation objective.

The student is trained with :func:`~paddle_binbert.distill.losses.compute_distill_loss`
(TinyBERT / BiBERT / BiT / BinaryBERT recipes); everything else (progress bars, logging,
checkpointing, resume, best-checkpoint selection, ``paddle.distributed.launch`` data
parallelism) is the Trainer's. Evaluation uses the hard-label loss and never runs the teacher.

A half-width student (BinaryBERT, :mod:`paddle_binbert.splitting.half_width`) is distilled from the
full teacher: hidden states as usual, attention scores against the teacher heads it kept
(:func:`~paddle_binbert.splitting.half_width.teacher_heads_for`); Q/K/V direction matching is refused.

Extractive QA (``BertForQuestionAnswering``, SQuAD) is recognised from the model's outputs: the
prediction terms then act on the start and end logits (padding masked) and the hard labels are
the batch's ``start_positions`` / ``end_positions``.

LengthDrop (``length_drop=LengthDropConfig(...)``, ``task_distill.py --length_adaptive``): the
training loss becomes the sandwich loss of :mod:`paddle_binbert.length_adaptive.lengthdrop` with the
distillation objective as the full model's loss (:meth:`DistillationTrainer.distill_loss`):
``(loss_distill + KL_smallest + sum_k KL_random_k) / (num_sandwich + 2)``, each sub-model's KL to
the full-length student's detached output distribution (inplace distillation; start and end
averaged for QA). The teacher only sees full-length inputs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, Optional, Tuple

import paddle
import paddle.nn as nn

from ..length_adaptive.lengthdrop import LengthDropConfig, Logits
from ..length_adaptive.trainer import LengthDropMixin
from ..models.quantize import attention_records, get_bert, set_recording
from ..splitting.half_width import teacher_heads_for
from ..trainer import BinBertTrainer
from .losses import (
    DistillLossConfig,
    DistillOutputs,
    check_teacher_heads,
    compute_distill_loss,
    hard_label_loss,
    span_hard_label_loss,
)

__all__ = ["DistillationTrainer", "collect_outputs", "needs_records", "needs_hidden_states", "SPAN_LABELS"]

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


class DistillationTrainer(LengthDropMixin, BinBertTrainer):
    """Trainer distilling ``teacher`` into ``model`` (the student) with ``loss_config``.

    Both models must be quantized with :func:`~paddle_binbert.quantize_model` (the FP teacher with
    the ``fp`` preset, which leaves its outputs unchanged) so that their attention layers can
    record scores and Q/K/V. Per-term losses are averaged over each logging window and logged as
    ``loss_<term>``.

    Args:
        *args: positional arguments of ``BinBertTrainer``.
        teacher: the fine-tuned (quantized with ``fp``) teacher.
        loss_config: the distillation objective.
        is_regression: one-output regression head (STS-B).
        length_drop: train with LengthDrop (sandwich rule, inplace distillation; parts logged as
            ``loss_la_<part>``), the distillation loss being the full model's loss; None: plain distillation.
        **kwargs: keyword arguments of ``BinBertTrainer``.
    """

    def __init__(
        self,
        *args: Any,
        teacher: nn.Layer,
        loss_config: DistillLossConfig,
        is_regression: bool = False,
        length_drop: Optional[LengthDropConfig] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.init_length_drop(length_drop, seed=self.args.seed)
        self.teacher = teacher
        self.loss_config = loss_config
        self.is_regression = is_regression
        student_bert, teacher_bert = get_bert(self.model), get_bert(teacher)
        if student_bert.config.hidden_size != teacher_bert.config.hidden_size and needs_hidden_states(loss_config):
            raise ValueError(
                f"student hidden size {student_bert.config.hidden_size} != teacher "
                f"{teacher_bert.config.hidden_size}: hidden-state terms need equal widths"
            )
        self.num_heads = student_bert.config.num_attention_heads
        # a half-width student (BinaryBERT): per layer, the teacher heads its heads are
        self.teacher_heads = teacher_heads_for(self.model, teacher) if needs_records(loss_config) else None
        check_teacher_heads(loss_config, self.teacher_heads)
        record = needs_records(loss_config)
        set_recording(self.model, record)
        set_recording(teacher, record)
        teacher.eval()
        for p in teacher.parameters():
            p.stop_gradient = True
        self._term_sums: Dict[str, float] = defaultdict(float)
        self._term_count = 0

    @staticmethod
    def _pop_labels(inputs: Dict[str, Any]) -> Any:
        """Remove the targets from the batch: ``labels``, or ``(start_positions, end_positions)`` for QA."""
        if any(key in inputs for key in SPAN_LABELS):
            positions: Tuple[Any, ...] = tuple(inputs.pop(key, None) for key in SPAN_LABELS)
            return None if any(p is None for p in positions) else positions
        return inputs.pop("labels", None)

    def compute_loss(self, model: nn.Layer, inputs: Dict[str, Any], return_outputs: bool = False):
        """Distillation loss (under LengthDrop: the sandwich loss around it) in training; hard-label
        loss (no teacher) in evaluation."""
        if not model.training:
            inputs = dict(inputs)
            labels = self._pop_labels(inputs)
            out = model(**inputs, return_dict=True)
            if hasattr(out, "start_logits"):
                loss = None
                if labels is not None:
                    mask = inputs.get("attention_mask")
                    loss = span_hard_label_loss(out.start_logits, out.end_logits, labels[0], labels[1], mask)
                return (loss, (loss, out.start_logits, out.end_logits)) if return_outputs else loss
            logits = out.logits
            loss = hard_label_loss(logits, labels, self.is_regression) if labels is not None else None
            # The Trainer's prediction_step takes outputs[1:] as the logits: give it (loss, logits).
            return (loss, (loss, logits)) if return_outputs else loss
        if self.length_drop is not None:
            loss, logits = self.length_drop_loss(model, inputs, self.distill_loss)
        else:
            loss, logits = self.distill_loss(model, inputs)
        if not return_outputs:
            return loss
        return (loss, (loss, *logits)) if isinstance(logits, tuple) else (loss, (loss, logits))

    def distill_loss(self, model: nn.Layer, inputs: Dict[str, Any]) -> Tuple[paddle.Tensor, Logits]:
        """The distillation objective of one batch for the full-length student: ``(loss, logits)``,
        ``logits`` the student's (``(start, end)`` for QA). Its terms are added to the logging window.

        This is the ``full_loss_fn`` of :func:`~paddle_binbert.length_adaptive.lengthdrop.sandwich_loss`
        under LengthDrop. ``inputs`` may hold the labels (they are taken out of a copy)."""
        inputs = dict(inputs)
        labels = self._pop_labels(inputs)
        student_out = collect_outputs(model, inputs, self.loss_config)
        with paddle.no_grad():
            teacher_out = collect_outputs(self.teacher, inputs, self.loss_config)
        loss, terms = compute_distill_loss(
            self.loss_config,
            student_out,
            teacher_out,
            labels,
            self.is_regression,
            self.num_heads,
            teacher_heads=self.teacher_heads,
        )
        for name, value in terms.items():
            if name != "total":
                self._term_sums[name] += value
        self._term_count += 1
        if student_out.end_logits is not None:
            return loss, (student_out.logits, student_out.end_logits)
        return loss, student_out.logits

    def log(self, logs: Dict[str, float], **kwargs: Any) -> None:
        """Add the averaged per-term losses of the window to the training log (averaged over the
        data-parallel ranks too, like ``loss``)."""
        if self._term_count and "loss" in logs:
            terms = {f"loss_{name}": total / self._term_count for name, total in self._term_sums.items()}
            logs.update({k: round(v, 6) for k, v in self.mean_over_ranks(terms).items()})
            self._term_sums.clear()
            self._term_count = 0
        if "loss" in logs:
            logs.update(self.pop_length_drop_logs())
        super().log(logs, **kwargs)

    def evaluate_teacher(self, eval_dataset: Optional[Any] = None) -> Dict[str, float]:
        """Dev metrics of the teacher, through the same evaluation loop as the student."""
        student = self.model
        self.model = self.teacher
        try:
            return self.evaluate(eval_dataset=eval_dataset, metric_key_prefix="teacher")
        finally:
            self.model = student
