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
"""

from __future__ import annotations

import copy
import os
from typing import Optional, Type, Union

import paddle.nn as nn
from paddlenlp.transformers import BertConfig
from paddlenlp.transformers.model_utils import load_state_dict

from ..quant.config import QuantConfig
from .quantize import QUANT_CONFIG_KEY, SUPPORTED_MODELS, quantize_model

__all__ = [
    "build_model",
    "has_custom_layout",
    "latent_fp_model",
    "load_model",
    "load_state_strict",
    "model_class_for",
]

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
    model = build_model(cls, config)
    load_state_strict(model, load_state_dict(weights), weights)
    model.eval()
    return model


def load_model(
    path: str,
    model_class: Optional[Type[nn.Layer]] = None,
    config: Optional[Union[str, BertConfig]] = None,
    **from_pretrained_kwargs,
) -> nn.Layer:
    """Load a BERT checkpoint, FP or quantized (recognised by ``binbert_quant_config``).

    ``path`` may be a PaddleNLP checkpoint folder, a bare state-dict file (``.pdparams``, as the
    BiBERT release ships its teacher; ``config`` then gives the architecture: a folder or
    config.json path or a BertConfig), or a name such as ``bert-base-uncased`` for online users
    (with ``model_class``). Quantized checkpoints are rebuilt with :func:`quantize_model` and loaded
    strictly (missing / unexpected / wrongly shaped keys are listed).
    """
    if os.path.isfile(path):
        if config is None:
            raise ValueError(f"{path} is a bare state dict: pass config= (folder or config.json) for its architecture")
        if not isinstance(config, BertConfig):
            config = BertConfig.from_pretrained(config)
        return _build_and_load(model_class or model_class_for(config), config, path)
    if not os.path.isdir(path):
        if model_class is None:
            raise ValueError(f"{path!r} is neither a checkpoint folder nor a file; pass model_class= to load by name")
        return model_class.from_pretrained(path, **from_pretrained_kwargs)
    cfg = BertConfig.from_pretrained(path)
    cls = model_class or model_class_for(cfg)
    if not has_custom_layout(cfg):
        model = cls.from_pretrained(path, **from_pretrained_kwargs)
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
