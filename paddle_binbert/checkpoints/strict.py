"""Strict matching of saved weights against a model: missing, unexpected and wrongly shaped keys
are listed (first ones), with a hint when the number of encoder layers differs."""

from __future__ import annotations

import re
from typing import Iterable, List, Sequence, Tuple

import paddle.nn as nn

from ..quant.calibration import sync_initialized
from .files import CheckpointError

__all__ = ["format_mismatch", "from_pretrained_mismatch", "layer_hint", "load_state_strict"]

_LAYER_RE = re.compile(r"(?:^|\.)encoder\.layers\.(\d+)\.")


def layer_hint(model_keys: Iterable[str], weight_keys: Iterable[str]) -> str:
    """A hint when the mismatch is the number of encoder layers (config vs saved weights); else ``""``."""

    def layers(keys: Iterable[str]) -> int:
        found = {int(m.group(1)) for m in map(_LAYER_RE.search, keys) if m}
        return max(found) + 1 if found else 0

    want, have = layers(model_keys), layers(weight_keys)
    if have and want != have:
        return (
            f" (the weights hold {have} encoder layers, the config's num_hidden_layers builds {want}: "
            "the config does not belong to these weights)"
        )
    return ""


def format_mismatch(groups: Sequence[Tuple[str, List[str]]], limit: int = 12) -> str:
    """``"missing (3): a, b, c; unexpected (1): d"`` for ``(label, keys)`` groups; at most ``limit`` keys each."""
    parts = []
    for label, keys in groups:
        if keys:
            shown = ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
            parts.append(f"{label} ({len(keys)}): {shown}")
    return "; ".join(parts)


def from_pretrained_mismatch(model: nn.Layer, weight_keys: Iterable[str]) -> Tuple[List[str], List[str]]:
    """(missing, unexpected) keys of PaddleNLP's ``from_pretrained``: the base-model prefix (``bert.``)
    is added to or removed from the model's keys as PaddleNLP does, its ignore patterns are applied."""
    loaded = set(weight_keys)
    expected = list(model.state_dict())
    prefix = getattr(model, "base_model_prefix", "") or ""
    if prefix:
        has_prefix = any(k.startswith(prefix) for k in loaded)
        expects_prefix = any(k.startswith(prefix) for k in expected)
        if expects_prefix and not has_prefix:
            expected = [k[len(prefix) + 1 :] if k.startswith(prefix + ".") else k for k in expected]
        elif has_prefix and not expects_prefix:
            expected = [f"{prefix}.{k}" for k in expected]
    missing = sorted(set(expected) - loaded)
    unexpected = sorted(loaded - set(expected))
    for attr, keys in (
        ("_keys_to_ignore_on_load_missing", missing),
        ("_keys_to_ignore_on_load_unexpected", unexpected),
    ):
        for pattern in getattr(type(model), attr, None) or []:
            keys[:] = [k for k in keys if re.search(pattern, k) is None]
    return missing, unexpected


def load_state_strict(model: nn.Layer, state: dict, source: str) -> None:
    """``set_state_dict`` that fails on missing, unexpected or wrongly shaped keys, listing them. The
    activation quantizers then know whether the loaded weights hold their scales (:func:`sync_initialized`).

    Raises:
        CheckpointError: (a ValueError) naming ``source``, the offending keys and, when the number
            of encoder layers differs, both layer counts.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {list(state[k].shape)} vs model {list(own[k].shape)}"
        for k in set(own) & set(state)
        if list(state[k].shape) != list(own[k].shape)
    )
    if missing or unexpected or shapes:
        detail = format_mismatch((("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)))
        raise CheckpointError(f"{source} does not match {type(model).__name__}{layer_hint(own, state)}: {detail}")
    model.set_state_dict(state)
    sync_initialized(model)
