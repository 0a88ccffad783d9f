"""End-to-end speed of a length configuration against the full-length model.

GLUE (:func:`measure_end_to_end`): tokenise a batch of texts -> logits, time per example.
SQuAD (:func:`measure_squad_end_to_end`): a batch of questions -> their sliding-window features
(:func:`~paddle_binbert.data.squad.prepare_eval_features`, the same code as evaluation) -> one forward
pass over all the windows of the batch -> start/end logits, time per question.

Per batch size, in the same run and interleaved (so machine load affects both alike), the time of

* the full model on inputs padded to ``max_seq_length`` (what the length budgets are counted at),
* the full model with dynamic padding (to the longest text / window of each batch), the usual deployment,
* the length configuration (Drop-and-Restore, Kim & Cho 2021) on inputs padded to ``max_seq_length``,
* the length configuration with dynamic padding,

each the median over ``repeats`` passes over the examples, after one untimed batch of each.
By default the model is a Paddle BERT run by
:func:`~paddle_binbert.length_adaptive.length_adaptive_forward`; ``forward=`` times any other
runner with the same inputs, e.g. the packed 1-bit engine (:func:`engine_forward`).
``speedup`` = full / configuration, both padded to ``max_seq_length`` (the Length-Adaptive Transformer's
setting); ``speedup_vs_dynamic`` = full / configuration, both with dynamic padding (deployment).

The two ways of padding give the configuration the same outputs on the real tokens: with budgets
``n_i = min(l_i, n_{i-1})``, padding is never kept over a real token and is masked as a key, so each
sequence keeps ``min(l_i, r_{i-1})`` of its ``r_{i-1}`` real tokens at layer ``i`` whatever ``n_0`` is
(tested in tests/length_adaptive/test_drop_restore.py).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import paddle

from .drop_restore import LengthAdaptiveOutput, length_adaptive_forward

__all__ = ["engine_forward", "measure_end_to_end", "measure_squad_end_to_end", "speed_table"]

Text = Tuple[str, Optional[str]]
#: ``encode(batch of items, pad_to_max)`` -> ``(input_ids, token_type_ids, attention_mask)`` int64 tensors
Encoder = Callable[[Sequence[Any], bool], Tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]]
#: ``forward(input_ids, token_type_ids, attention_mask, length_config or None)``; returns once the
#: outputs are on the host
Forward = Callable[[paddle.Tensor, paddle.Tensor, paddle.Tensor, Optional[Tuple[int, ...]]], Any]


def _synchronise(out: LengthAdaptiveOutput) -> None:
    """Fetch the head's outputs to the host (waits for the forward pass)."""
    heads = [t for t in (out.logits, out.start_logits, out.end_logits) if t is not None]
    for tensor in heads or [out.pooled_output]:
        tensor.numpy()


def _paddle_forward(model: Any) -> Forward:
    """Drop-and-Restore forward of a Paddle BERT, outputs fetched to the host."""

    def forward(ids, types, mask, config):
        _synchronise(length_adaptive_forward(model, ids, types, mask, length_config=config))

    return forward


def engine_forward(runner: Any) -> Forward:
    """The ``forward=`` of :func:`measure_end_to_end` / :func:`measure_squad_end_to_end` for a
    packed model loaded by :func:`paddle_binbert.engine.load` (its outputs are numpy arrays)."""

    def forward(ids, types, mask, config):
        runner.forward(ids, types, mask, length_config=config)

    return forward


def _run(
    forward: Forward,
    items: Sequence[Any],
    batch_size: int,
    encode: Encoder,
    pad_to_max: bool,
    config: Optional[Sequence[int]],
) -> float:
    """Milliseconds per item of encode -> forward -> outputs over ``items`` in batches of ``batch_size``."""
    start = time.perf_counter()
    for i in range(0, len(items), batch_size):
        forward(*encode(items[i : i + batch_size], pad_to_max), config)
    return 1000.0 * (time.perf_counter() - start) / len(items)


def _measure(
    model: Any,
    items: Sequence[Any],
    encode: Encoder,
    length_config: Sequence[int],
    batch_sizes: Sequence[int],
    repeats: int,
    forward: Optional[Forward] = None,
) -> List[Dict[str, Any]]:
    if not items:
        raise ValueError("no examples to time")
    if repeats < 1:
        raise ValueError(f"repeats must be positive, got {repeats}")
    variants = {
        "full_padded_ms": (True, None),
        "full_dynamic_ms": (False, None),
        "config_ms": (True, tuple(length_config)),
        "config_dynamic_ms": (False, tuple(length_config)),
    }
    if model is None and forward is None:
        raise ValueError("give a model or a forward= runner to time")
    run = forward or _paddle_forward(model)
    was_training = model is not None and model.training
    if model is not None:
        model.eval()
    rows = []
    try:
        with paddle.no_grad():
            for bs in batch_sizes:
                for pad_to_max, config in variants.values():  # warm-up
                    _run(run, items[:bs], bs, encode, pad_to_max, config)
                runs: Dict[str, List[float]] = {k: [] for k in variants}
                for _ in range(repeats):
                    for key, (pad_to_max, config) in variants.items():
                        runs[key].append(_run(run, items, bs, encode, pad_to_max, config))
                row: Dict[str, Any] = {"batch_size": bs, **{k: statistics.median(v) for k, v in runs.items()}}
                row["speedup"] = row["full_padded_ms"] / row["config_ms"]
                row["speedup_vs_dynamic"] = row["full_dynamic_ms"] / row["config_dynamic_ms"]
                rows.append(row)
    finally:
        if was_training:
            model.train()
    return rows


def measure_end_to_end(
    model: Any,
    tokenizer: Any,
    texts: Sequence[Text],
    length_config: Sequence[int],
    max_seq_length: int,
    batch_sizes: Sequence[int] = (1, 32),
    repeats: int = 3,
    forward: Optional[Forward] = None,
) -> List[Dict[str, Any]]:
    """Milliseconds per example (tokenise -> logits) of the full model and of ``length_config``.

    Args:
        model: a Paddle BERT classifier (FP or quantized), or None when ``forward`` is given.
        forward: time this runner instead of ``model`` (e.g. ``engine_forward(engine.load(dir))``).
        texts: ``(text_a, text_b or None)`` pairs.
        length_config: the budgets at ``max_seq_length``.

    Returns:
        One dict per batch size: ``batch_size``, ``full_padded_ms``, ``full_dynamic_ms``,
        ``config_ms`` (padded), ``config_dynamic_ms``, ``speedup`` (full / config, padded),
        ``speedup_vs_dynamic`` (full / config, dynamic padding).
    """

    def encode(chunk: Sequence[Text], pad_to_max: bool):
        pairs = [b for _, b in chunk]
        kwargs = dict(
            max_length=max_seq_length,
            truncation=True,
            padding="max_length" if pad_to_max else "longest",
            return_attention_mask=True,
            return_token_type_ids=True,
        )
        if any(p is not None for p in pairs):
            enc = tokenizer([a for a, _ in chunk], [p or "" for p in pairs], **kwargs)
        else:
            enc = tokenizer([a for a, _ in chunk], **kwargs)
        return tuple(paddle.to_tensor(enc[k], dtype="int64") for k in ("input_ids", "token_type_ids", "attention_mask"))

    return _measure(model, texts, encode, length_config, batch_sizes, repeats, forward)


def measure_squad_end_to_end(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Any],
    length_config: Sequence[int],
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    batch_sizes: Sequence[int] = (1, 32),
    repeats: int = 3,
    forward: Optional[Forward] = None,
) -> List[Dict[str, Any]]:
    """Milliseconds per question (question + context -> windows -> start/end logits) of a
    ``BertForQuestionAnswering``, full model and ``length_config``.

    A batch is ``batch_size`` questions: their sliding-window features are built with
    :func:`~paddle_binbert.data.squad.prepare_eval_features` (tokenisation with offsets included),
    padded with :func:`~paddle_binbert.data.squad.collate_features` to ``max_seq_length`` (or, for
    "dynamic padding", to the longest window of the batch) and run in one forward pass. Answer
    decoding is not timed (it is the same for every variant).

    Args:
        model: a Paddle ``BertForQuestionAnswering``, or None when ``forward`` is given.
        examples: :class:`~paddle_binbert.data.squad.SquadExample` questions.
        forward: time this runner instead of ``model`` (see :func:`measure_end_to_end`).
        length_config: the budgets at ``max_seq_length``.

    Returns:
        The rows of :func:`measure_end_to_end`, each with ``windows``: the number of windows of
        ``examples``.
    """
    from ..data.squad import collate_features, prepare_eval_features

    pad_id = int(getattr(tokenizer, "pad_token_id", 0) or 0)

    def encode(chunk: Sequence[Any], pad_to_max: bool):
        features = prepare_eval_features(chunk, tokenizer, max_seq_length, doc_stride, max_query_length)
        arrays = collate_features(features, pad_id, max_length=max_seq_length if pad_to_max else None)
        return tuple(paddle.to_tensor(arrays[k]) for k in ("input_ids", "token_type_ids", "attention_mask"))

    rows = _measure(model, examples, encode, length_config, batch_sizes, repeats, forward)
    windows = len(prepare_eval_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length))
    for row in rows:
        row["windows"] = windows
    return rows


def speed_table(rows: List[Dict[str, Any]], length_config: Sequence[int], squad: bool = False) -> str:
    """Markdown table of :func:`measure_end_to_end` (or, ``squad=True``, :func:`measure_squad_end_to_end`) rows."""
    label = "-".join(str(v) for v in length_config)
    if squad:
        windows = f" ({rows[0]['windows']} windows)" if rows and "windows" in rows[0] else ""
        title = (
            "End to end (question + context -> sliding-window features -> start/end logits), ms per question, "
            f"batch = questions{windows}, all windows of a batch in one forward pass, "
            f"length configuration `{label}`."
        )
    else:
        title = f"End to end (tokenise -> logits), ms per example, length configuration `{label}`."
    lines = [
        title,
        "",
        "| batch | full, padded to max | config, padded to max | speedup, padded | full, dynamic padding | "
        "config, dynamic padding | speedup, dynamic padding |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch_size']} | {r['full_padded_ms']:.2f} | {r['config_ms']:.2f} | {r['speedup']:.2f}x "
            f"| {r['full_dynamic_ms']:.2f} | {r['config_dynamic_ms']:.2f} | {r['speedup_vs_dynamic']:.2f}x |"
        )
    return "\n".join(lines)
