"""Load FP and quantized BERT checkpoints written by ``save_pretrained``.

A quantized student is saved by PaddleNLP's own ``save_pretrained`` (config.json with the
``binbert_quant_config`` entry + ``model_state.pdparams`` holding the latent weights and the
quantizer parameters). Loading rebuilds the FP class from the config, applies
:func:`quantize_model` with the stored QuantConfig, then loads the state dict strictly.
"""

from __future__ import annotations

import os
from typing import Optional, Type

import paddle.nn as nn
from paddlenlp.transformers import BertConfig
from paddlenlp.transformers.model_utils import load_state_dict

from ..quant.config import QuantConfig
from .quantize import QUANT_CONFIG_KEY, SUPPORTED_MODELS, quantize_model

__all__ = ["load_model", "load_state_strict", "model_class_for"]

WEIGHT_FILES = ("model_state.pdparams", "model.safetensors")


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
    """``set_state_dict`` that fails on missing, unexpected or wrongly shaped keys, listing them."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {list(state[k].shape)} vs model {list(own[k].shape)}"
        for k in set(own) & set(state)
        if list(state[k].shape) != list(own[k].shape)
    )
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if keys:
                parts.append(f"{label} ({len(keys)}): " + ", ".join(keys[:20]) + (" ..." if len(keys) > 20 else ""))
        raise ValueError(f"{source} does not match {type(model).__name__}: " + "; ".join(parts))
    model.set_state_dict(state)


def load_model(path: str, model_class: Optional[Type[nn.Layer]] = None, **from_pretrained_kwargs) -> nn.Layer:
    """Load a PaddleNLP BERT checkpoint folder, FP or quantized (by ``binbert_quant_config``).

    FP checkpoints (and names such as ``bert-base-uncased`` for online users) go through
    ``model_class.from_pretrained``; quantized ones are rebuilt and loaded strictly.
    """
    if not os.path.isdir(path):
        if model_class is None:
            raise ValueError(f"{path!r} is not a checkpoint folder; pass model_class= to load it by name")
        return model_class.from_pretrained(path, **from_pretrained_kwargs)
    config = BertConfig.from_pretrained(path)
    cls = model_class or model_class_for(config)
    quant = getattr(config, QUANT_CONFIG_KEY, None)
    if quant is None:
        return cls.from_pretrained(path, **from_pretrained_kwargs)
    weights = next((os.path.join(path, f) for f in WEIGHT_FILES if os.path.isfile(os.path.join(path, f))), None)
    if weights is None:
        raise FileNotFoundError(f"{path} has a quantized config.json but none of the weight files {WEIGHT_FILES}")
    qconfig = QuantConfig.from_dict(quant, source=os.path.join(path, "config.json"))
    delattr(config, QUANT_CONFIG_KEY)
    model = cls(config)
    quantize_model(model, qconfig)
    load_state_strict(model, load_state_dict(weights), weights)
    model.eval()
    return model
