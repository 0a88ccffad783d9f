"""End-to-end speed of a length configuration against the full-length model (tokenise -> logits).

Per batch size, in the same run and interleaved (so machine load affects both alike), the time per
example of

* the full model on inputs padded to ``max_seq_length`` (what the length budgets are counted at),
* the full model with dynamic padding (to the longest text of each batch), the usual deployment,
* the length configuration (Drop-and-Restore, Kim & Cho 2021) on inputs padded to ``max_seq_length``,

each the median over ``repeats`` passes over the texts. Speedup = full (padded) / configuration.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import paddle

from .drop_restore import length_adaptive_forward

__all__ = ["measure_end_to_end", "speed_table"]

Text = Tuple[str, Optional[str]]


def _run(
    model: Any,
    tokenizer: Any,
    texts: Sequence[Text],
    batch_size: int,
    max_len: int,
    padding: str,
    config: Optional[Sequence[int]],
) -> float:
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        chunk = texts[i : i + batch_size]
        pairs = [b for _, b in chunk]
        kwargs = dict(
            max_length=max_len, truncation=True, padding=padding, return_attention_mask=True, return_token_type_ids=True
        )
        if any(p is not None for p in pairs):
            enc = tokenizer([a for a, _ in chunk], [p or "" for p in pairs], **kwargs)
        else:
            enc = tokenizer([a for a, _ in chunk], **kwargs)
        tensors = [paddle.to_tensor(enc[k], dtype="int64") for k in ("input_ids", "token_type_ids", "attention_mask")]
        out = length_adaptive_forward(model, *tensors, length_config=config)
        (out.logits if out.logits is not None else out.pooled_output).numpy()
    return 1000.0 * (time.perf_counter() - start) / len(texts)


def measure_end_to_end(
    model: Any,
    tokenizer: Any,
    texts: Sequence[Text],
    length_config: Sequence[int],
    max_seq_length: int,
    batch_sizes: Sequence[int] = (1, 32),
    repeats: int = 3,
) -> List[Dict[str, Any]]:
    """Milliseconds per example (tokenise -> logits) of the full model and of ``length_config``.

    Args:
        texts: ``(text_a, text_b or None)`` pairs.
        length_config: the budgets at ``max_seq_length``.

    Returns:
        One dict per batch size: ``batch_size``, ``full_padded_ms``, ``full_dynamic_ms``,
        ``config_ms``, ``speedup`` (full padded / config), ``speedup_vs_dynamic``.
    """
    if not texts:
        raise ValueError("no texts to time")
    model.eval()
    rows = []
    with paddle.no_grad():
        for bs in batch_sizes:
            runs = {"full_padded_ms": [], "full_dynamic_ms": [], "config_ms": []}
            _run(model, tokenizer, texts[:bs], bs, max_seq_length, "max_length", length_config)  # warm-up
            for _ in range(repeats):
                runs["full_padded_ms"].append(_run(model, tokenizer, texts, bs, max_seq_length, "max_length", None))
                runs["full_dynamic_ms"].append(_run(model, tokenizer, texts, bs, max_seq_length, "longest", None))
                runs["config_ms"].append(_run(model, tokenizer, texts, bs, max_seq_length, "max_length", length_config))
            row: Dict[str, Any] = {"batch_size": bs, **{k: statistics.median(v) for k, v in runs.items()}}
            row["speedup"] = row["full_padded_ms"] / row["config_ms"]
            row["speedup_vs_dynamic"] = row["full_dynamic_ms"] / row["config_ms"]
            rows.append(row)
    return rows


def speed_table(rows: List[Dict[str, Any]], length_config: Sequence[int]) -> str:
    """Markdown table of :func:`measure_end_to_end` rows."""
    label = "-".join(str(v) for v in length_config)
    lines = [
        f"End to end (tokenise -> logits), ms per example, length configuration `{label}`.",
        "",
        "| batch | full, padded to max | full, dynamic padding | length config | speedup vs padded | "
        "speedup vs dynamic |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch_size']} | {r['full_padded_ms']:.2f} | {r['full_dynamic_ms']:.2f} | {r['config_ms']:.2f} "
            f"| {r['speedup']:.2f}x | {r['speedup_vs_dynamic']:.2f}x |"
        )
    return "\n".join(lines)
