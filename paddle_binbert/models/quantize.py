"""`quantize_model(model, config)`: turn a PaddleNLP BERT into its quantized student, in place.

One entry point swapping modules according to a small config, like torchao's ``quantize_``.
What is quantized is decided in exactly one place, :func:`quantization_role`; everything it
returns ``None`` for stays full precision (the FP islands of specs/README.md: classifier / QA
head, position and token-type embeddings, every LayerNorm, biases, residual additions).
"""

from __future__ import annotations

import copy
from typing import List, Optional, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification, BertModel

from ..quant.config import QuantConfig
from ..quant.layers import EngineLayerNorm, QuantEmbedding, QuantLinear
from ..quant.quantizers import (
    ElasticQuantizer,
    LsqQuantizer,
    Quantizer,
    SignQuantizer,
    UniformClipQuantizer,
    get_quantizer,
)
from .attention import AttentionRecord, QuantMultiHeadAttention

__all__ = [
    "SUPPORTED_MODELS",
    "quantization_role",
    "quantize_model",
    "get_bert",
    "quant_config_of",
    "set_recording",
    "set_sublayer",
    "attention_records",
]

SUPPORTED_MODELS = (BertModel, BertForSequenceClassification, BertForQuestionAnswering)
QUANT_CONFIG_KEY = "binbert_quant_config"


def quantization_role(name: str, layer: nn.Layer) -> Optional[str]:
    """The filter: what a sublayer of a ``BertModel`` becomes, by its name relative to it.

    - ``"embedding"``: the word embedding (``embeddings.word_embeddings``);
    - ``"linear"``: every encoder linear (q/k/v/out projections, FFN ``linear1``/``linear2``)
      and the pooler dense layer (quantized like the encoder in all three references);
    - ``None``: full precision (position/token-type embeddings, LayerNorms, and anything
      outside the ``BertModel`` such as the classifier or QA head).
    """
    if isinstance(layer, nn.Embedding):
        return "embedding" if name == "embeddings.word_embeddings" else None
    if isinstance(layer, nn.Linear):
        if name.startswith("encoder.layers."):
            return "linear"
        if name == "pooler.dense":
            return "linear"
    return None


def get_bert(model: nn.Layer) -> BertModel:
    """The ``BertModel`` inside a supported model (or the model itself), also when the model is
    wrapped in ``paddle.DataParallel`` (as the Trainer does under ``paddle.distributed.launch``)."""
    if isinstance(model, paddle.DataParallel):
        model = model._layers
    if not isinstance(model, SUPPORTED_MODELS):
        names = ", ".join(cls.__name__ for cls in SUPPORTED_MODELS)
        raise TypeError(f"quantize_model supports PaddleNLP {names}; got {type(model).__name__}")
    return model if isinstance(model, BertModel) else model.bert


def quant_config_of(model: nn.Layer) -> Optional[QuantConfig]:
    """The QuantConfig a model was quantized with, or None for a plain PaddleNLP model."""
    data = getattr(getattr(model, "config", None), QUANT_CONFIG_KEY, None)
    return None if data is None else QuantConfig.from_dict(data, source=f"{type(model).__name__}.config")


def _weight_quantizer(name: str, bits: int, axis: Optional[int]) -> Optional[Quantizer]:
    if bits == 32:
        return None
    # `bibert` is per output channel on linears (axis 0), every quantizer is per row on embeddings.
    return get_quantizer(name, bits=bits, axis=axis)


def _activation_quantizer(config: QuantConfig, signed: bool, num_channels: int = 1) -> Optional[Quantizer]:
    """The activation quantizer of one site; ``signed`` applies BiT's two-set rule."""
    bits, family = config.activation_bits, config.activation_quantizer
    if bits == 32:
        return None
    if family == "sign":
        return SignQuantizer()
    if family == "elastic":
        return ElasticQuantizer(signed=signed, num_channels=num_channels)
    if family == "lsq":
        return LsqQuantizer(bits=bits, signed=signed)
    if family == "uniform_clip":
        return UniformClipQuantizer(bits=bits)
    raise ValueError(f"unknown activation quantizer {family!r}")  # unreachable: QuantConfig validates


def _linear_axis(config: QuantConfig) -> Optional[int]:
    return 0 if config.weight_quantizer == "bibert" else None


def set_sublayer(root: nn.Layer, dotted: str, new: nn.Layer) -> None:
    """Replace the sublayer of ``root`` at the dotted path ``dotted`` by ``new``."""
    parent_name, _, child = dotted.rpartition(".")
    parent = root
    for part in parent_name.split(".") if parent_name else []:
        parent = getattr(parent, part)
    setattr(parent, child, new)


def quantize_model(
    model: nn.Layer, config: Union[QuantConfig, str, dict], ffn_input_unsigned: Optional[bool] = None
) -> nn.Layer:
    """Swap a PaddleNLP BERT's layers for their quantized versions (in place) and return it.

    The student keeps the class tree and parameter names of ``model`` (weights are copied), so
    ``save_pretrained`` / :func:`paddle_binbert.load_model` round-trip it; the QuantConfig is
    stored in ``model.config.binbert_quant_config``. Each encoder ``self_attn`` becomes a
    :class:`QuantMultiHeadAttention` of the configured variant. With 1-bit activations (``sign`` /
    ``elastic``) the LayerNorms become :class:`~paddle_binbert.quant.EngineLayerNorm` (the packed
    engine's rounding; same parameters and gradients).

    Args:
        model: ``BertModel``, ``BertForSequenceClassification`` or ``BertForQuestionAnswering``.
        config: a QuantConfig, a preset name (``"bibert"``), a YAML path or a dict.
        ffn_input_unsigned: force the FFN2-input set; default: unsigned iff the FFN uses ReLU.
    """
    config = QuantConfig.resolve(config)
    bert = get_bert(model)
    existing = quant_config_of(model)
    if existing is not None:
        raise ValueError(f"{type(model).__name__} is already quantized ({existing.name})")
    if getattr(bert, "fuse", False):
        raise ValueError("fused encoder layers (config.fuse=True) cannot be quantized; build the model with fuse=False")

    # The config object is often shared with other models (and the caller): give the student its own.
    own_config = copy.deepcopy(model.config)
    model.config = own_config
    bert.config = own_config

    if config.hidden_act is not None:
        for layer in bert.encoder.layers:
            layer.activation = getattr(F, config.hidden_act)
        model.config.hidden_act = config.hidden_act
    act_name = model.config.hidden_act
    if ffn_input_unsigned is None:
        ffn_input_unsigned = act_name == "relu"

    for name, layer in list(bert.named_sublayers()):
        role = quantization_role(name, layer)
        if role == "embedding":
            wq = _weight_quantizer(config.embedding_quantizer, config.embedding_bits, axis=-1)
            set_sublayer(bert, name, QuantEmbedding.from_embedding(layer, wq))
        elif role == "linear":
            signed = not (name.endswith("linear2") and ffn_input_unsigned)
            wq = _weight_quantizer(config.weight_quantizer, config.weight_bits, _linear_axis(config))
            iq = _activation_quantizer(config, signed=signed, num_channels=layer.weight.shape[0])
            set_sublayer(bert, name, QuantLinear.from_linear(layer, wq, iq))

    if config.activation_bits == 1:
        # binary activations: every LayerNorm output is binarized next, so the LayerNorms round as the
        # packed engine does (still full precision; same parameters, F.layer_norm's gradients)
        for name, layer in list(bert.named_sublayers()):
            if type(layer) is nn.LayerNorm:
                set_sublayer(bert, name, EngineLayerNorm.from_layer_norm(layer))

    for layer in bert.encoder.layers:
        variant = config.attention
        # per-channel Q/K/V quantizers get the projections' real output width: hidden_size, or
        # kept_heads * head_dim for a half-width model (splitting.half_width)
        width = int(layer.self_attn.q_proj.weight.shape[1])
        qkv = [_activation_quantizer(config, signed=True, num_channels=width) for _ in range(3)]
        prob = None if variant == "bi" else _activation_quantizer(config, signed=False, num_channels=1)
        layer.self_attn = QuantMultiHeadAttention(layer.self_attn, variant, *qkv, prob_quantizer=prob)

    setattr(model.config, QUANT_CONFIG_KEY, config.to_dict())
    return model


def _attention_layers(model: nn.Layer) -> List[QuantMultiHeadAttention]:
    layers = [layer.self_attn for layer in get_bert(model).encoder.layers]
    if not all(isinstance(a, QuantMultiHeadAttention) for a in layers):
        raise TypeError("the model's attention is not a QuantMultiHeadAttention; call quantize_model first")
    return layers


def set_recording(model: nn.Layer, enabled: bool = True) -> None:
    """Make every attention layer keep the Q/K/V and scores of its last call (for distillation)."""
    for attn in _attention_layers(model):
        attn.record = enabled
        if not enabled:
            attn.last_record = None


def attention_records(model: nn.Layer) -> List[AttentionRecord]:
    """The per-layer :class:`AttentionRecord` of the last forward pass (recording must be on)."""
    records = [attn.last_record for attn in _attention_layers(model)]
    if any(r is None for r in records):
        raise RuntimeError("no attention records: call set_recording(model, True) before the forward pass")
    return records
