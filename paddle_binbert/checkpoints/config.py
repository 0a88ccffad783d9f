"""The architecture of a checkpoint: reading, checking and resolving ``BertConfig`` s.

Configs are checked before any model is built (:func:`check_bert_config`: sizes are positive
integers, ``hidden_size`` divisible by ``num_attention_heads``, a known ``hidden_act`` ...; the
error names the file and the field). A bare weight file gets its architecture from
:func:`resolve_config`: a built-in name (``bert-base-uncased``, no download), a config file, a
folder holding one, a dict or a ``BertConfig``.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
from typing import Any, List, Optional, Union

from paddlenlp.transformers import BertConfig

from ..accounting import ARCH_KEYS
from .files import CONFIG_FILES, CheckpointError, config_file_in, describe_value, read_config_json

__all__ = [
    "ConfigLike",
    "builtin_config",
    "check_bert_config",
    "check_hf_config",
    "read_config",
    "resolve_config",
]

ConfigLike = Union[None, str, os.PathLike, dict, BertConfig]

_PROBABILITY_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob")
_MISSING = object()


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
            problems.append(f"field {name!r} must be a positive integer, got {describe_value(value)}")
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
                f"got {describe_value(act)}"
            )
    for name in _PROBABILITY_FIELDS:
        value = getattr(config, name, _MISSING)
        if value is _MISSING:
            continue
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
            problems.append(f"field {name!r} must be a number in [0, 1], got {describe_value(value)}")
    eps = getattr(config, "layer_norm_eps", _MISSING)
    if eps is not _MISSING and (
        not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not (math.isfinite(eps) and eps > 0)
    ):
        problems.append(f"field 'layer_norm_eps' must be a positive number, got {describe_value(eps)}")
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))


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


def builtin_config(name: str) -> BertConfig:
    """A ``BertConfig`` for a PaddleNLP built-in architecture name, without any download.

    ``bert-base-uncased`` is vocab 30522, hidden 768, 12 layers, 12 heads, FFN 3072, 512 positions,
    2 token types (PaddleNLP's ``BERT_PRETRAINED_INIT_CONFIGURATION``, which also knows
    ``bert-large-uncased``, ``bert-base-cased``, ``bert-base-chinese``, ...).
    """
    from paddlenlp.transformers.bert.configuration import BERT_PRETRAINED_INIT_CONFIGURATION

    if name not in BERT_PRETRAINED_INIT_CONFIGURATION:
        known = ", ".join(sorted(BERT_PRETRAINED_INIT_CONFIGURATION))
        raise ValueError(f"unknown built-in BERT architecture {name!r}; known names: {known}")
    return BertConfig(**copy.deepcopy(BERT_PRETRAINED_INIT_CONFIGURATION[name]))


def resolve_config(config: ConfigLike, default_dir: Optional[str] = None) -> BertConfig:
    """Turn an architecture description into a (fresh) ``BertConfig``.

    Args:
        config: a ``BertConfig`` (copied), a dict of config fields, a built-in name such as
            ``bert-base-uncased``, a folder with ``config.json`` / legacy ``model_config.json``, or
            the path of such a JSON file (Hugging Face and old PaddleNLP ``init_args`` layouts are
            both understood). ``None`` uses the config file found in ``default_dir``.
        default_dir: where to look when ``config`` is None (the folder of a bare weight file).

    Raises:
        ValueError: nothing usable was given or found.
    """
    if isinstance(config, BertConfig):
        config = copy.deepcopy(config)
        check_bert_config(config, "config= argument")
        return config
    if isinstance(config, dict):
        config = BertConfig.from_dict(copy.deepcopy(config))
        check_bert_config(config, "config= argument")
        return config
    if config is None:
        found = config_file_in(default_dir) if default_dir else None
        if found is None:
            where = f" and {default_dir} holds no {' / '.join(CONFIG_FILES)}" if default_dir else ""
            raise ValueError(
                "a bare state dict needs its architecture: pass config= (a name such as 'bert-base-uncased', "
                f"a config.json or a checkpoint folder){where}"
            )
        config = found
    text = os.fspath(config)
    if os.path.isdir(text):
        if config_file_in(text) is None:
            raise ValueError(f"{text} holds no {' or '.join(CONFIG_FILES)}")
        return read_config(text)
    if os.path.isfile(text):
        data = read_config_json(text)
        try:
            config = BertConfig.from_dict(data)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise CheckpointError(f"{text}: not a usable BERT config ({type(err).__name__}: {err})") from err
        check_bert_config(config, text)
        return config
    return builtin_config(text)


def check_hf_config(config: BertConfig, source: str) -> None:
    """Refuse Hugging Face BERT configs the PaddleNLP model cannot reproduce: relative position
    embeddings, an activation Paddle lacks."""
    import paddle.nn.functional as F

    kind = getattr(config, "position_embedding_type", "absolute") or "absolute"
    if kind != "absolute":
        raise ValueError(f"{source}: position_embedding_type={kind!r} is not supported (only 'absolute')")
    if not hasattr(F, config.hidden_act):
        raise ValueError(f"{source}: hidden_act={config.hidden_act!r} has no Paddle equivalent (use gelu or relu)")
