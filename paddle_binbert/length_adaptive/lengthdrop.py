"""LengthDrop training with the sandwich rule and inplace distillation.

Length-Adaptive Transformer (Kim & Cho, ACL 2021), after the sandwich rule / inplace distillation of
slimmable networks (Yu & Huang, "Universally Slimmable Networks", ICCV 2019) and LayerDrop (Fan et
al., ICLR 2020). Per training step, with ``p`` the length-drop ratio bound and ``l_0`` the padded
sequence length:

* full model: the task loss (or a distillation loss), ``loss_full``;
* smallest model: ``l_i = max(m, ceil((1 - p) * l_{i-1}))`` (``m`` = minimum length, 2);
* ``num_sandwich`` random models: ``l_i ~ U{max(m, ceil((1 - p) * l_{i-1})), ..., l_{i-1}}`` and each
  layer skipped with probability ``layer_dropout_prob`` (LayerDrop);
* each sub-model is trained towards the full model's detached output distribution,
  ``KL(softmax(z_full) || softmax(z_sub))`` (mean squared error for a one-output regression head;
  the mean over start and end for span heads);
* ``loss = (loss_full + sum_k loss_k) / (num_sandwich + 2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..models.quantize import get_bert
from .drop_restore import length_adaptive_forward

__all__ = [
    "LengthDropConfig",
    "FullLossFn",
    "sample_length_config",
    "smallest_length_config",
    "sample_layer_skip",
    "inplace_distill_loss",
    "sub_model_logits",
    "sandwich_loss",
]

Logits = Union[paddle.Tensor, Tuple[paddle.Tensor, ...]]
#: ``full_loss_fn(model, inputs) -> (loss, logits)``: the full-length model's training loss and its
#: output logits (a tensor, or ``(start_logits, end_logits)`` for span tasks).
FullLossFn = Callable[[nn.Layer, Dict[str, Any]], Tuple[paddle.Tensor, Logits]]

MODEL_INPUT_KEYS = ("input_ids", "token_type_ids", "attention_mask", "position_ids")


@dataclass
class LengthDropConfig:
    """Hyper-parameters of LengthDrop training.

    Attributes:
        num_sandwich: number of random sub-models per step (besides the full and the smallest).
        length_drop_ratio_bound: ``p``: each layer keeps at least ``ceil((1 - p) * l_{i-1})`` tokens.
        layer_dropout_prob: probability of skipping each layer in the random sub-models.
        min_length: lower bound of every budget (2: [CLS] and one more token).
    """

    num_sandwich: int = 2
    length_drop_ratio_bound: float = 0.2
    layer_dropout_prob: float = 0.2
    min_length: int = 2

    def __post_init__(self) -> None:
        if self.num_sandwich < 0:
            raise ValueError(f"num_sandwich must be >= 0, got {self.num_sandwich}")
        if not 0.0 <= self.length_drop_ratio_bound < 1.0:
            raise ValueError(f"length_drop_ratio_bound must be in [0, 1), got {self.length_drop_ratio_bound}")
        if not 0.0 <= self.layer_dropout_prob < 1.0:
            raise ValueError(f"layer_dropout_prob must be in [0, 1), got {self.layer_dropout_prob}")
        if self.min_length < 1:
            raise ValueError(f"min_length must be >= 1, got {self.min_length}")


def _lower_bound(previous: int, ratio_bound: float, min_length: int) -> int:
    """``max(m, ceil((1 - p) * l_{i-1}))``, capped at ``l_{i-1}``."""
    # round first: (1 - 0.2) * 10 is 8.000000000000002 in floating point
    low = math.ceil(round((1.0 - ratio_bound) * previous, 9))
    return min(previous, max(min_length, low))


def smallest_length_config(
    seq_length: int, num_layers: int, ratio_bound: float = 0.2, min_length: int = 2
) -> Tuple[int, ...]:
    """The smallest sub-model of the sandwich: ``l_i = max(m, ceil((1 - p) * l_{i-1}))``, ``l_0`` = sequence length."""
    config, previous = [], seq_length
    for _ in range(num_layers):
        previous = _lower_bound(previous, ratio_bound, min_length)
        config.append(previous)
    return tuple(config)


def sample_length_config(
    seq_length: int,
    num_layers: int,
    ratio_bound: float = 0.2,
    rng: Optional[np.random.Generator] = None,
    min_length: int = 2,
) -> Tuple[int, ...]:
    """A random configuration: ``l_i`` uniform over the integers ``[max(m, ceil((1 - p) l_{i-1})), l_{i-1}]``."""
    rng = rng if rng is not None else np.random.default_rng()
    config, previous = [], seq_length
    for _ in range(num_layers):
        previous = int(rng.integers(_lower_bound(previous, ratio_bound, min_length), previous + 1))
        config.append(previous)
    return tuple(config)


def sample_layer_skip(num_layers: int, prob: float, rng: Optional[np.random.Generator] = None) -> List[bool]:
    """LayerDrop: each layer skipped independently with probability ``prob`` (Fan et al. 2020)."""
    rng = rng if rng is not None else np.random.default_rng()
    return [bool(v) for v in rng.random(num_layers) < prob]


def _kl(student: paddle.Tensor, target: paddle.Tensor) -> paddle.Tensor:
    if student.shape[-1] == 1:  # regression head: no distribution
        return F.mse_loss(student, target)
    log_p = F.log_softmax(target, axis=-1)
    log_q = F.log_softmax(student, axis=-1)
    return (log_p.exp() * (log_p - log_q)).sum(axis=-1).mean()


def inplace_distill_loss(student: Logits, target: Logits) -> paddle.Tensor:
    """``KL(softmax(z_full) || softmax(z_sub))`` averaged over the batch, with ``z_full`` detached
    (inplace distillation, Yu & Huang 2019); MSE for one-output regression logits; span heads
    ``(start, end)`` average the two terms."""
    if isinstance(student, (tuple, list)):
        terms = [_kl(s, t.detach()) for s, t in zip(student, target)]
        return paddle.add_n(terms) / len(terms)
    return _kl(student, target.detach())


def sub_model_logits(
    model: nn.Layer, inputs: Dict[str, Any], length_config: Sequence[int], layer_skip: Optional[Sequence[bool]] = None
) -> Logits:
    """Logits of the sub-model ``(length_config, layer_skip)`` on ``inputs`` (labels are ignored)."""
    kwargs = {k: inputs[k] for k in MODEL_INPUT_KEYS if inputs.get(k) is not None}
    input_ids = kwargs.pop("input_ids")
    out = length_adaptive_forward(model, input_ids, length_config=length_config, layer_skip=layer_skip, **kwargs)
    if out.logits is not None:
        return out.logits
    if out.start_logits is not None:
        return out.start_logits, out.end_logits
    raise TypeError(f"{type(model).__name__} has no classification or span head to distil")


def sandwich_loss(
    model: nn.Layer,
    inputs: Dict[str, Any],
    full_loss_fn: FullLossFn,
    config: Optional[LengthDropConfig] = None,
    rng: Optional[np.random.Generator] = None,
) -> Tuple[paddle.Tensor, Logits, Dict[str, float]]:
    """One LengthDrop step's loss (sandwich rule with inplace distillation, Kim & Cho 2021).

    ``loss = (loss_full + KL_smallest + sum_{k=1..n} KL_random_k) / (n + 2)`` with ``n = num_sandwich``
    (see the module docstring). The distillation trainer passes its distillation loss as ``full_loss_fn``.

    Args:
        model: the model being trained (BertForSequenceClassification / BertForQuestionAnswering,
            FP or quantized).
        inputs: the batch (``input_ids``, ``token_type_ids``, ``attention_mask``, labels...).
        full_loss_fn: ``(model, inputs) -> (loss, logits)`` of the full-length model.
        config: :class:`LengthDropConfig` (defaults: 2 sandwiches, ratio bound 0.2, LayerDrop 0.2).
        rng: numpy Generator for the random sub-models.

    Returns:
        ``(loss, full_logits, terms)`` with ``terms`` the float value of each part (``full``,
        ``smallest``, ``random``: the mean over the random models, ``total``).
    """
    config = config or LengthDropConfig()
    rng = rng if rng is not None else np.random.default_rng()
    full_loss, full_logits = full_loss_fn(model, inputs)
    target = tuple(t.detach() for t in full_logits) if isinstance(full_logits, (tuple, list)) else full_logits.detach()
    seq_length = int(inputs["input_ids"].shape[1])
    num_layers = len(get_bert(model).encoder.layers)

    smallest = smallest_length_config(seq_length, num_layers, config.length_drop_ratio_bound, config.min_length)
    small_loss = inplace_distill_loss(sub_model_logits(model, inputs, smallest), target)
    random_losses = []
    for _ in range(config.num_sandwich):
        lengths = sample_length_config(seq_length, num_layers, config.length_drop_ratio_bound, rng, config.min_length)
        skip = sample_layer_skip(num_layers, config.layer_dropout_prob, rng)
        random_losses.append(inplace_distill_loss(sub_model_logits(model, inputs, lengths, skip), target))
    total = paddle.add_n([full_loss, small_loss] + random_losses) / (config.num_sandwich + 2)
    terms = {"full": float(full_loss), "smallest": float(small_loss), "total": float(total)}
    if random_losses:
        terms["random"] = float(sum(float(v) for v in random_losses) / len(random_losses))
    return total, full_logits, terms
