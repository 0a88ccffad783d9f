"""Costs of a length configuration: multiply-accumulates on a fixed-length input, and measured latency.

MACs (Kim & Cho 2021 count FLOPs of the same terms): for BERT width ``H``, FFN width ``F``, ``c``
outputs, input length ``N``, and ``n_0 = N``, ``n_i = min(l_i, n_{i-1})`` (a skipped layer costs 0 and
keeps ``n_{i-1}``), layer ``i`` costs

    attention over n_{i-1} tokens:  4 n_{i-1} H^2  (Q, K, V and output projections)
                                  + 2 n_{i-1}^2 H  (scores Q K^T and context P V)
    feed-forward over n_i tokens:   2 n_i H F

plus the pooler ``H^2`` and the head: ``H c`` for classification, ``2 N H`` for spans (every
restored position). Embedding lookups, LayerNorm, softmax and the selection are not counted.
"""

from __future__ import annotations

import statistics
import time
from typing import Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn
from paddlenlp.transformers import BertForQuestionAnswering

from ..models.quantize import get_bert
from .drop_restore import check_length_config, length_adaptive_forward

__all__ = ["length_config_macs", "model_macs", "measure_latency"]


def length_config_macs(
    length_config: Optional[Sequence[int]],
    seq_length: int,
    hidden_size: int,
    intermediate_size: int,
    num_layers: Optional[int] = None,
    num_outputs: int = 2,
    span_head: bool = False,
    layer_skip: Optional[Sequence[bool]] = None,
) -> int:
    """MACs of one example of length ``seq_length`` under ``length_config`` (formula in the module docstring).

    ``length_config`` None means every layer keeps every token (``num_layers`` is then required).
    """
    if length_config is None:
        if num_layers is None:
            raise ValueError("num_layers is needed when length_config is None")
        length_config = (seq_length,) * num_layers
    h, f = hidden_size, intermediate_size
    total, n = 0, seq_length
    for i, budget in enumerate(length_config):
        if layer_skip is not None and layer_skip[i]:
            continue
        kept = min(int(budget), n)
        total += 4 * n * h * h + 2 * n * n * h + 2 * kept * h * f
        n = kept
    total += h * h
    total += 2 * seq_length * h if span_head else h * num_outputs
    return int(total)


def model_macs(model: nn.Layer, length_config: Optional[Sequence[int]], seq_length: int) -> int:
    """:func:`length_config_macs` with the sizes read from ``model.config`` (span head for QA models)."""
    bert = get_bert(model)
    cfg = bert.config
    num_layers = len(bert.encoder.layers)
    config = check_length_config(length_config, num_layers)
    span = isinstance(model, BertForQuestionAnswering)
    outputs = getattr(model, "num_labels", None) or getattr(cfg, "num_labels", 2)
    return length_config_macs(
        config, seq_length, cfg.hidden_size, cfg.intermediate_size, num_layers, outputs, span_head=span
    )


def measure_latency(
    model: nn.Layer,
    length_config: Optional[Sequence[int]],
    seq_length: int,
    batch_size: int = 1,
    repeats: int = 10,
    warmup: int = 2,
    seed: int = 0,
) -> float:
    """Median wall time (milliseconds) of :func:`length_adaptive_forward` on a random, unpadded
    ``[batch_size, seq_length]`` input (no gradients, eval mode), after ``warmup`` untimed runs."""
    if repeats < 1:
        raise ValueError(f"repeats must be positive, got {repeats}")
    bert = get_bert(model)
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, bert.config.vocab_size, size=(batch_size, seq_length))
    ids[:, 0] = getattr(bert.config, "cls_token_id", None) or ids[0, 0]
    input_ids = paddle.to_tensor(ids, dtype="int64")
    token_type_ids = paddle.zeros_like(input_ids)
    mask = paddle.ones_like(input_ids)
    was_training = model.training
    model.eval()
    times = []
    try:
        with paddle.no_grad():
            for i in range(warmup + repeats):
                start = time.perf_counter()
                out = length_adaptive_forward(model, input_ids, token_type_ids, mask, length_config)
                result = out.logits if out.logits is not None else out.start_logits
                if result is None:
                    result = out.pooled_output
                result.numpy()  # synchronise
                if i >= warmup:
                    times.append(time.perf_counter() - start)
    finally:
        if was_training:
            model.train()
    return 1000.0 * statistics.median(times)
