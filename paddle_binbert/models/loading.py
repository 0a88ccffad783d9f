"""Load FP and quantized BERT checkpoints written by ``save_pretrained``.

A quantized student is saved by PaddleNLP's own ``save_pretrained`` (config.json with the
``binbert_quant_config`` entry + ``model_state.pdparams`` holding the latent weights and the
quantizer parameters). Loading rebuilds the FP class from the config, applies
:func:`quantize_model` with the stored QuantConfig, then loads the state dict strictly.

The config records of the model surgeries are replayed in the order they were applied
(:func:`build_model`): ``binbert_half_width`` (BinaryBERT's half-width start, FP projections
rebuilt by :func:`~paddle_binbert.splitting.half_width.apply_half_width_layout`), then
``binbert_quant_config`` (:func:`quantize_model`), then ``binbert_split`` (TWS layers,
:func:`~paddle_binbert.splitting.tws.apply_split_layout`).

Loading is strict for every kind of checkpoint, full-precision folders included (PaddleNLP's
``from_pretrained`` alone only logs a warning and keeps random values): a weight the model expects
but the file lacks, or a weight the model has no place for (e.g. a ``config.json`` whose
``num_hidden_layers`` does not match the saved layers), raises :class:`CheckpointError` naming the
checkpoint and the first offending keys. The config is checked before any model is built
(:func:`check_bert_config`: positive integer sizes, ``hidden_size`` divisible by
``num_attention_heads``, a known ``hidden_act`` ...) and unreadable weight files (empty,
truncated, not a state dict) are reported with their path.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import numbers
import os
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Type, Union

import paddle.nn as nn
from paddlenlp.transformers import BertConfig
from paddlenlp.transformers.model_utils import load_state_dict

from ..accounting import ARCH_KEYS
from ..io_utils import decode_utf8, parse_json
from ..quant.config import QuantConfig
from .quantize import QUANT_CONFIG_KEY, SUPPORTED_MODELS, quantize_model

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointError",
    "build_model",
    "check_bert_config",
    "has_custom_layout",
    "latent_fp_model",
    "load_model",
    "load_state_strict",
    "model_class_for",
    "read_config",
    "read_config_json",
    "read_weights",
]

WEIGHT_FILES = ("model_state.pdparams", "model.safetensors")
CONFIG_FILES = ("config.json", "model_config.json")
#: weight files of a full-precision folder, in the order PaddleNLP's ``from_pretrained`` picks them
FP_WEIGHT_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "model_state.pdparams.index.json",
    "model_state.pdparams",
)


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded as it is: bad config field, unreadable weight file, or weights
    that do not match the model the config describes. The message names the file (and the field or
    the offending keys)."""


# ------------------------------------------------------------------------------ config checks

_PROBABILITY_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob")
_MISSING = object()


def _describe(value: Any) -> str:
    kinds = {str: "a string", bool: "a boolean", float: "a float", list: "a list", dict: "an object"}
    kind = "null" if value is None else kinds.get(type(value), type(value).__name__)
    text = json.dumps(value) if isinstance(value, (str, bool, list, dict)) or value is None else repr(value)
    return f"{text} ({kind})"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_bert_config(config: Any, source: str) -> None:
    """Check the fields of a ``BertConfig`` that PaddleNLP would otherwise trip over deep inside
    model construction (``AssertionError``, ``TypeError: '<=' not supported ...``).

    Checked: the size fields (``vocab_size``, ``hidden_size``, ``num_hidden_layers``,
    ``num_attention_heads``, ``intermediate_size``, ``max_position_embeddings``,
    ``type_vocab_size``, ``num_labels``) are positive integers (JSON numbers, not strings);
    ``hidden_size`` is a multiple of ``num_attention_heads``; ``hidden_act`` names a function of
    ``paddle.nn.functional`` (``gelu``, ``relu`` ...); the dropout probabilities are numbers in
    [0, 1]; ``layer_norm_eps`` is a positive number.

    Raises:
        CheckpointError: naming ``source`` (the config file) and every bad field with its value.
    """
    problems: List[str] = []
    for name in ARCH_KEYS + ("num_labels",):
        value = getattr(config, name, _MISSING)
        if value is _MISSING:
            continue
        if not _is_int(value) or value < 1:
            problems.append(f"field {name!r} must be a positive integer, got {_describe(value)}")
    hidden, heads = getattr(config, "hidden_size", None), getattr(config, "num_attention_heads", None)
    if _is_int(hidden) and _is_int(heads) and hidden >= 1 and heads >= 1 and hidden % heads:
        problems.append(
            f"field 'hidden_size' ({hidden}) must be divisible by field 'num_attention_heads' ({heads}): "
            "each head gets hidden_size / num_attention_heads dimensions"
        )
    act = getattr(config, "hidden_act", _MISSING)
    if act is not _MISSING:
        import paddle.nn.functional as F

        if not isinstance(act, str) or not callable(getattr(F, act, None)) or act.startswith("_"):
            problems.append(
                f'field \'hidden_act\' must name an activation of paddle.nn.functional (e.g. "gelu", "relu"), '
                f"got {_describe(act)}"
            )
    for name in _PROBABILITY_FIELDS:
        value = getattr(config, name, _MISSING)
        if value is _MISSING:
            continue
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
            problems.append(f"field {name!r} must be a number in [0, 1], got {_describe(value)}")
    eps = getattr(config, "layer_norm_eps", _MISSING)
    if eps is not _MISSING and (
        not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not (math.isfinite(eps) and eps > 0)
    ):
        problems.append(f"field 'layer_norm_eps' must be a positive number, got {_describe(eps)}")
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))


def config_file_in(folder: str) -> Optional[str]:
    """``folder/config.json`` (or legacy ``model_config.json``) when present."""
    return next((os.path.join(folder, f) for f in CONFIG_FILES if os.path.isfile(os.path.join(folder, f))), None)


def read_config_json(path: str) -> Dict[str, Any]:
    """The JSON object of a config file; errors name the file (and line / column for bad JSON).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not UTF-8, not JSON, or not a JSON object.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} does not exist") from None
    data = parse_json(decode_utf8(raw, str(path), CheckpointError, "UTF-8 JSON"), str(path), CheckpointError)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object of config fields, got {_describe(data)}")
    return data


def read_config(path: str) -> BertConfig:
    """The checked ``BertConfig`` of a checkpoint folder or of a config file.

    The file is read as JSON first (errors name it, with line and column), then by PaddleNLP's
    ``BertConfig.from_pretrained`` (legacy ``model_config.json`` layouts included) and checked
    with :func:`check_bert_config`.

    Raises:
        FileNotFoundError: no config file.
        CheckpointError: unreadable or invalid config (the message names the file and field).
    """
    path = os.fspath(path)
    source = path if os.path.isfile(path) else (config_file_in(path) if os.path.isdir(path) else None)
    if source is None:
        where = f"{path} holds no {' / '.join(CONFIG_FILES)}" if os.path.isdir(path) else f"{path} does not exist"
        raise FileNotFoundError(f"no model config: {where}")
    read_config_json(source)
    try:
        config = BertConfig.from_pretrained(path)
    except (ValueError, TypeError, KeyError, AttributeError, OSError) as err:
        raise CheckpointError(f"{source}: not a usable BERT config ({type(err).__name__}: {err})") from err
    check_bert_config(config, source)
    return config


# ------------------------------------------------------------------------------ weight files


def read_weights(path: str) -> Dict[str, Any]:
    """Read a ``.pdparams`` / ``.safetensors`` state dict with PaddleNLP's ``load_state_dict``.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is empty, truncated, corrupt or holds no ``{name: tensor}`` dict
            (the message names the file).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weight file {path} does not exist")
    if os.path.getsize(path) == 0:
        raise CheckpointError(
            f"{path}: the weight file is empty (0 bytes); it was not saved completely: save or copy it again"
        )
    try:
        state = load_state_dict(path)
    except (MemoryError, PermissionError):
        raise
    except Exception as err:  # pickle / safetensors errors of every kind: name the file
        raise CheckpointError(
            f"{path}: cannot read the weights ({type(err).__name__}: {err}); the file is truncated, corrupt or "
            "not a Paddle state dict"
        ) from err
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict {{name: tensor}}, got {type(state).__name__}")
    return state


def _weight_keys(path: str) -> Tuple[List[str], Optional[Dict[str, Any]]]:
    """The key names of a weight file and, for single files, its state dict (read once)."""
    if path.endswith(".index.json"):
        data = read_config_json(path)
        weight_map = data.get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{path}: expected a 'weight_map' object of a sharded checkpoint")
        return list(weight_map), None
    state = read_weights(path)
    return list(state), state


# ------------------------------------------------------------------------------ strict matching

_LAYER_RE = re.compile(r"(?:^|\.)encoder\.layers\.(\d+)\.")


def _layer_hint(model_keys: Iterable[str], weight_keys: Iterable[str]) -> str:
    """A hint when the mismatch is the number of encoder layers (config vs saved weights)."""

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


def _format_mismatch(groups: Sequence[Tuple[str, List[str]]], limit: int = 12) -> str:
    parts = []
    for label, keys in groups:
        if keys:
            shown = ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
            parts.append(f"{label} ({len(keys)}): {shown}")
    return "; ".join(parts)


def _key_mismatch(model: nn.Layer, weight_keys: Iterable[str]) -> Tuple[List[str], List[str]]:
    """(missing, unexpected) keys of ``from_pretrained``: the base-model prefix (``bert.``) is added to
    or removed from the model's keys as PaddleNLP does, its ignore patterns are applied."""
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


def model_class_for(config: BertConfig, default: Optional[Type[nn.Layer]] = None) -> Type[nn.Layer]:
    """The PaddleNLP class named by ``config.architectures`` (or ``default``)."""
    by_name = {cls.__name__: cls for cls in SUPPORTED_MODELS}
    for arch in getattr(config, "architectures", None) or []:
        if arch in by_name:
            return by_name[arch]
    if default is not None:
        return default
    raise ValueError(
        f"config.architectures={getattr(config, 'architectures', None)} names no supported class; "
        f"pass model_class= one of {sorted(by_name)}"
    )


def load_state_strict(model: nn.Layer, state: dict, source: str) -> None:
    """``set_state_dict`` that fails on missing, unexpected or wrongly shaped keys, listing them.

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
        detail = _format_mismatch((("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)))
        raise CheckpointError(f"{source} does not match {type(model).__name__}{_layer_hint(own, state)}: {detail}")
    model.set_state_dict(state)


def _half_width_layout(model: nn.Layer) -> nn.Layer:
    from ..splitting.half_width import apply_half_width_layout  # lazy: splitting imports models

    return apply_half_width_layout(model)


def has_custom_layout(config: BertConfig) -> bool:
    """Whether ``config`` describes a model ``cls(config)`` alone does not rebuild: quantized
    (``binbert_quant_config``), split or half-width (``binbert_half_width``)."""
    from ..splitting.half_width import HALF_WIDTH_CONFIG_KEY

    return any(getattr(config, key, None) for key in (QUANT_CONFIG_KEY, HALF_WIDTH_CONFIG_KEY))


def build_model(cls: Type[nn.Layer], config: BertConfig) -> nn.Layer:
    """Instantiate ``cls`` from ``config`` (random weights) with the layout of the checkpoint it came
    from, same parameter names and shapes: the half-width projections when the config carries
    ``binbert_half_width``, then the quantized student for ``binbert_quant_config``, then the split
    layers of ``binbert_split``."""
    quant = getattr(config, QUANT_CONFIG_KEY, None)
    if quant is None:
        return _half_width_layout(cls(config))
    qconfig = QuantConfig.from_dict(quant, source=f"{QUANT_CONFIG_KEY} of the config")
    config = copy.deepcopy(config)
    delattr(config, QUANT_CONFIG_KEY)
    model = _half_width_layout(cls(config))
    quantize_model(model, qconfig)
    if getattr(model.config, "binbert_split", None):
        from ..splitting.tws import apply_split_layout  # lazy: splitting imports models

        apply_split_layout(model)
    return model


def _build_and_load(cls: Type[nn.Layer], config: BertConfig, weights: str) -> nn.Layer:
    state = read_weights(weights)
    model = build_model(cls, config)
    load_state_strict(model, state, weights)
    model.eval()
    return model


def _load_fp_folder(path: str, cls: Type[nn.Layer], config: BertConfig, strict: bool, **kwargs: Any) -> nn.Layer:
    """``cls.from_pretrained(path)`` made strict: the weight file is read once (errors name it), its
    keys are compared with the model's (``bert.`` prefix rules of PaddleNLP) and a mismatch raises."""
    weights = next((os.path.join(path, f) for f in FP_WEIGHT_FILES if os.path.isfile(os.path.join(path, f))), None)
    if weights is None:
        raise FileNotFoundError(f"{path} has a config but none of the weight files {', '.join(FP_WEIGHT_FILES)}")
    keys, state = _weight_keys(weights)
    if state is not None and "state_dict" not in kwargs:
        kwargs["state_dict"] = state
    try:
        model = cls.from_pretrained(path, **kwargs)
    except (ValueError, RuntimeError, AssertionError, TypeError) as err:
        raise CheckpointError(f"{weights} cannot be loaded into {cls.__name__}: {err}") from err
    missing, unexpected = _key_mismatch(model, keys)
    if missing or unexpected:
        detail = _format_mismatch((("missing", missing), ("unexpected", unexpected)))
        hint = _layer_hint(model.state_dict(), keys)
        if strict:
            raise CheckpointError(
                f"{weights} does not match the {cls.__name__} of {config_file_in(path) or path}{hint}: {detail}"
            )
        logger.warning(
            "%s%s: keeping initial values of missing keys, ignoring unexpected ones: %s", weights, hint, detail
        )
    return model


def load_model(
    path: str,
    model_class: Optional[Type[nn.Layer]] = None,
    config: Optional[Union[str, BertConfig]] = None,
    strict: bool = True,
    **from_pretrained_kwargs,
) -> nn.Layer:
    """Load a BERT checkpoint, FP or quantized (recognised by ``binbert_quant_config``).

    ``path`` may be a PaddleNLP checkpoint folder, a bare state-dict file (``.pdparams``, as the
    BiBERT release ships its teacher; ``config`` then gives the architecture: a folder or
    config.json path or a BertConfig), or a name such as ``bert-base-uncased`` for online users
    (with ``model_class``). Quantized checkpoints are rebuilt with :func:`quantize_model`.

    Loading is strict: missing / unexpected (and, for quantized or bare files, wrongly shaped)
    keys raise :class:`CheckpointError` listing them. ``strict=False`` (full-precision folders
    only) keeps PaddleNLP's lenient behaviour with a warning: e.g. a backbone folder loaded into a
    head model keeps a freshly initialised head.

    Raises:
        CheckpointError: a bad config field (file and field named), an unreadable weight file, or
            weights that do not match the config.
        FileNotFoundError: no config or weight file.
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        if config is None:
            raise ValueError(f"{path} is a bare state dict: pass config= (folder or config.json) for its architecture")
        if not isinstance(config, BertConfig):
            config = read_config(os.fspath(config))
        else:
            check_bert_config(config, "config")
        return _build_and_load(model_class or model_class_for(config), config, path)
    if not os.path.isdir(path):
        if model_class is None:
            raise ValueError(f"{path!r} is neither a checkpoint folder nor a file; pass model_class= to load by name")
        return model_class.from_pretrained(path, **from_pretrained_kwargs)
    cfg = read_config(path)
    cls = model_class or model_class_for(cfg)
    if not has_custom_layout(cfg):
        model = _load_fp_folder(path, cls, cfg, strict, **from_pretrained_kwargs)
        model.eval()  # like quantized checkpoints: ready for inference, the Trainer switches to train mode
        return model
    weights = next((os.path.join(path, f) for f in WEIGHT_FILES if os.path.isfile(os.path.join(path, f))), None)
    if weights is None:
        raise FileNotFoundError(
            f"{path} has a quantized / half-width config.json but none of the weight files {WEIGHT_FILES}"
        )
    return _build_and_load(cls, cfg, weights)


def latent_fp_model(model: nn.Layer) -> nn.Layer:
    """A new full-precision model of the same class holding ``model``'s latent weights.

    A quantized student keeps its FP latent weights under the FP parameter names (quantizers only
    add ``*_quantizer.*`` parameters), so the FP model's state is a subset of the student's. Used
    by multi-step distillation (BiT): stage k+1 starts from stage k's latent weights and is then
    re-quantized with its own config (quantizer parameters start afresh). ``hidden_act`` stays
    what the student used (e.g. ReLU for BiT); a half-width student gives a half-width FP model
    (``binbert_half_width`` is kept). Split (TWS) students have no single latent matrix per layer
    and are refused.
    """
    config = copy.deepcopy(model.config)
    if getattr(config, "binbert_split", None):
        raise ValueError("a split (TWS) student has two latent matrices per layer; it cannot become an FP model")
    for key in (QUANT_CONFIG_KEY, "binbert_split"):
        if hasattr(config, key):
            delattr(config, key)
    fp = _half_width_layout(type(model)(config))
    own, state = fp.state_dict(), model.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(f"{type(model).__name__} lacks FP parameters {missing[:10]}")
    fp.set_state_dict({k: state[k] for k in own})
    return fp
