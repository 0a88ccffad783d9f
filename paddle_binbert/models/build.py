"""Build a BERT model with the layout of the checkpoint it came from (quantized, split, half-width).

A quantized student is saved by PaddleNLP's own ``save_pretrained`` (config.json with the
``binbert_quant_config`` entry + ``model_state.pdparams`` holding the latent weights and the
quantizer parameters). :func:`build_model` rebuilds it from the config: the FP class, then
:func:`quantize_model` with the stored QuantConfig. The config records of the model surgeries are
replayed in the order they were applied: ``binbert_half_width`` (BinaryBERT's half-width start, FP
projections rebuilt by :func:`~paddle_binbert.splitting.half_width.apply_half_width_layout`), then
``binbert_quant_config`` (:func:`quantize_model`, with the custom filter recorded in
``binbert_quant_filter`` if any), then ``binbert_split`` (TWS layers,
:func:`~paddle_binbert.splitting.tws.apply_split_layout`).

Loading the weights into it is :mod:`paddle_binbert.checkpoints`'s job (``load_model`` /
``load_checkpoint``).
"""

from __future__ import annotations

import copy
from typing import Optional, Type

import paddle.nn as nn
from paddlenlp.transformers import BertConfig

from ..quant.config import QuantConfig
from .quantize import FILTER_KEY, QUANT_CONFIG_KEY, SUPPORTED_MODELS, quantization_role, quantize_model, recorded_filter

__all__ = ["build_model", "has_custom_layout", "latent_fp_model", "model_class_for"]


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
    overrides = getattr(config, FILTER_KEY, None)
    config = copy.deepcopy(config)
    for key in (QUANT_CONFIG_KEY, FILTER_KEY):
        if hasattr(config, key):
            delattr(config, key)
    model = _half_width_layout(cls(config))
    quantize_model(model, qconfig, filter_fn=recorded_filter(overrides) if overrides else quantization_role)
    if getattr(model.config, "binbert_split", None):
        from ..splitting.tws import apply_split_layout  # lazy: splitting imports models

        apply_split_layout(model)
    return model


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
    for key in (QUANT_CONFIG_KEY, FILTER_KEY, "binbert_split"):
        if hasattr(config, key):
            delattr(config, key)
    fp = _half_width_layout(type(model)(config))
    own, state = fp.state_dict(), model.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(f"{type(model).__name__} lacks FP parameters {missing[:10]}")
    fp.set_state_dict({k: state[k] for k in own})
    return fp
