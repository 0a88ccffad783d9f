"""PaddleNLP checkpoints (``save_pretrained`` folders, FP or quantized) and bare state dicts by class.

:func:`load_model` picks the model class from ``config.architectures`` (or ``model_class=``).
Quantized, split and half-width folders (recognised by their config records, see
:mod:`paddle_binbert.models.build`) and bare state-dict files go through
:func:`~paddle_binbert.checkpoints.weights.load_weights_file`; full-precision folders through
PaddleNLP's ``from_pretrained``, made strict.

Loading is strict for every kind of checkpoint, full-precision folders included (PaddleNLP's
``from_pretrained`` alone only logs a warning and keeps random values): a weight the model expects
but the file lacks, or a weight the model has no place for (e.g. a ``config.json`` whose
``num_hidden_layers`` does not match the saved layers), raises :class:`CheckpointError` naming the
checkpoint and the first offending keys. The config is checked before any model is built and
unreadable weight files (empty, truncated, not a state dict) are reported with their path.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional, Type, Union

import paddle.nn as nn
from paddlenlp.transformers import BertConfig

from ..models.build import has_custom_layout, model_class_for
from .config import check_bert_config, read_config
from .files import CheckpointError, config_file_in, first_file, read_state_dict, weight_file_keys
from .strict import format_mismatch, from_pretrained_mismatch, layer_hint
from .weights import load_weights_file

logger = logging.getLogger(__name__)

__all__ = ["FP_WEIGHT_FILES", "WEIGHT_FILES", "load_model"]

#: weight files of a quantized / split / half-width folder
WEIGHT_FILES = ("model_state.pdparams", "model.safetensors")
#: weight files of a full-precision folder, in the order PaddleNLP's ``from_pretrained`` picks them
FP_WEIGHT_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "model_state.pdparams.index.json",
    "model_state.pdparams",
)


def _load_fp_folder(path: str, cls: Type[nn.Layer], strict: bool, **kwargs: Any) -> nn.Layer:
    """``cls.from_pretrained(path)`` made strict: the weight file is read once (errors name it), its
    keys are compared with the model's (``bert.`` prefix rules of PaddleNLP) and a mismatch raises."""
    weights = first_file(path, FP_WEIGHT_FILES)
    if weights is None:
        raise FileNotFoundError(f"{path} has a config but none of the weight files {', '.join(FP_WEIGHT_FILES)}")
    if weights.endswith(".index.json"):
        keys = weight_file_keys(weights)  # sharded: PaddleNLP reads the shards itself
    else:
        state = read_state_dict(weights)
        keys = list(state)
        kwargs.setdefault("state_dict", state)
    try:
        model = cls.from_pretrained(path, **kwargs)
    except (ValueError, RuntimeError, AssertionError, TypeError) as err:
        raise CheckpointError(f"{weights} cannot be loaded into {cls.__name__}: {err}") from err
    missing, unexpected = from_pretrained_mismatch(model, keys)
    if missing or unexpected:
        detail = format_mismatch((("missing", missing), ("unexpected", unexpected)))
        hint = layer_hint(model.state_dict(), keys)
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
    """Load a BERT checkpoint, FP or quantized (recognised by ``binbert_quant_config``), in eval mode.

    ``path`` may be a PaddleNLP checkpoint folder, a bare state-dict file (``.pdparams``, as the
    BiBERT release ships its teacher; ``config`` then gives the architecture: a folder or
    config.json path or a BertConfig), or a name such as ``bert-base-uncased`` for online users
    (with ``model_class``). Quantized checkpoints are rebuilt with :func:`quantize_model`.
    :func:`~paddle_binbert.checkpoints.load_checkpoint` reads every other format too (by task).

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
        return load_weights_file(path, model_class or model_class_for(config), config, num_labels=config.num_labels)
    if not os.path.isdir(path):
        if model_class is None:
            raise ValueError(f"{path!r} is neither a checkpoint folder nor a file; pass model_class= to load by name")
        return model_class.from_pretrained(path, **from_pretrained_kwargs)
    cfg = read_config(path)
    cls = model_class or model_class_for(cfg)
    if not has_custom_layout(cfg):
        model = _load_fp_folder(path, cls, strict, **from_pretrained_kwargs)
        model.eval()  # like quantized checkpoints: ready for inference, the Trainer switches to train mode
        return model
    weights = first_file(path, WEIGHT_FILES)
    if weights is None:
        raise FileNotFoundError(
            f"{path} has a quantized / half-width config.json but none of the weight files {WEIGHT_FILES}"
        )
    return load_weights_file(weights, cls, cfg, num_labels=cfg.num_labels)
