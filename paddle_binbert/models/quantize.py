"""`quantize_model(model, config, filter_fn=quantization_role)`: turn a PaddleNLP BERT into its
quantized student, in place.

One entry point swapping modules according to a small config, like torchao's
``quantize_(model, config, filter_fn)``. What is quantized is decided by the filter function, by
default :func:`quantization_role`; everything it returns ``None`` for stays full precision (the FP
islands of specs/README.md: classifier / QA head, position and token-type embeddings, biases,
residual additions). A custom filter (e.g. one keeping the last encoder layer full precision) is
recorded in the model's config (``binbert_quant_filter``: the sublayers where it differs from the
default) so that a saved student is rebuilt with the same layout.
"""

from __future__ import annotations

import copy
from typing import Callable, Dict, List, Optional, Tuple, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification, BertModel

from ..quant.config import QuantConfig
from ..quant.layers import EngineLayerNorm, QuantEmbedding, QuantLinear
from ..quant.quantizers import Quantizer, get_quantizer
from .attention import AttentionRecord, QuantMultiHeadAttention

__all__ = [
    "SUPPORTED_MODELS",
    "FILTER_KEY",
    "QUANTIZATION_ROLES",
    "FilterFn",
    "quantization_role",
    "recorded_filter",
    "quantize_model",
    "get_bert",
    "quant_config_of",
    "set_recording",
    "set_sublayer",
    "attention_records",
]

SUPPORTED_MODELS = (BertModel, BertForSequenceClassification, BertForQuestionAnswering)
QUANT_CONFIG_KEY = "binbert_quant_config"
#: config entry recording where a custom ``filter_fn`` differed from :func:`quantization_role`
FILTER_KEY = "binbert_quant_filter"

#: what a filter may return for a sublayer (``None``: leave it full precision), and the layer type each needs
QUANTIZATION_ROLES: Dict[str, type] = {
    "embedding": nn.Embedding,
    "linear": nn.Linear,
    "attention": nn.MultiHeadAttention,
    "layer_norm": nn.LayerNorm,
}

#: ``filter_fn(name, layer) -> role or None``; ``name`` is relative to the ``BertModel``
FilterFn = Callable[[str, nn.Layer], Optional[str]]


def quantization_role(name: str, layer: nn.Layer) -> Optional[str]:
    """The default filter: what a sublayer of a ``BertModel`` becomes, by its name relative to it.

    - ``"embedding"``: the word embedding (``embeddings.word_embeddings``), weight quantized row-wise;
    - ``"linear"``: every encoder linear (q/k/v/out projections, FFN ``linear1``/``linear2``)
      and the pooler dense layer (quantized like the encoder in all three references);
    - ``"attention"``: each encoder layer's ``self_attn`` (Q/K/V and probabilities quantized, in the
      configured attention variant);
    - ``"layer_norm"``: every LayerNorm; it stays full precision but, with 1-bit activations, rounds
      as the packed engine does (:class:`~paddle_binbert.quant.EngineLayerNorm`);
    - ``None``: full precision (position/token-type embeddings, and anything outside the
      ``BertModel`` such as the classifier or QA head).
    """
    if isinstance(layer, nn.Embedding):
        return "embedding" if name == "embeddings.word_embeddings" else None
    if isinstance(layer, nn.Linear):
        if name.startswith("encoder.layers."):
            return "linear"
        if name == "pooler.dense":
            return "linear"
    if isinstance(layer, nn.MultiHeadAttention) and name.startswith("encoder.layers.") and name.endswith(".self_attn"):
        return "attention"
    if type(layer) is nn.LayerNorm:
        return "layer_norm"
    return None


def recorded_filter(overrides: Dict[str, Optional[str]]) -> FilterFn:
    """The filter a student was quantized with, from its config record ``{sublayer name: role}`` (the
    sublayers where it differed from :func:`quantization_role`)."""
    overrides = dict(overrides)

    def replay(name: str, layer: nn.Layer) -> Optional[str]:
        return overrides[name] if name in overrides else quantization_role(name, layer)

    return replay


def _roles(bert: BertModel, filter_fn: FilterFn) -> Tuple[Dict[str, Optional[str]], Dict[str, Optional[str]]]:
    """``filter_fn``'s role for every sublayer of ``bert`` (checked against :data:`QUANTIZATION_ROLES`),
    and the subset where it differs from :func:`quantization_role` (the record of a custom filter)."""
    roles, overrides = {}, {}
    for name, layer in bert.named_sublayers():
        role = filter_fn(name, layer)
        if role is not None:
            if role not in QUANTIZATION_ROLES:
                raise ValueError(
                    f"filter_fn gave {name} the unknown role {role!r}; "
                    f"valid roles: {sorted(QUANTIZATION_ROLES)} or None"
                )
            if not isinstance(layer, QUANTIZATION_ROLES[role]):
                raise ValueError(
                    f"filter_fn gave {name} ({type(layer).__name__}) the role {role!r}, "
                    f"which needs a {QUANTIZATION_ROLES[role].__name__}"
                )
        roles[name] = role
        if role != quantization_role(name, layer):
            overrides[name] = role
    return roles, overrides


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
    # Only `uniform` has a width argument; the binary / ternary ones are fixed (QuantConfig checks the bits).
    if name == "uniform":
        return get_quantizer(name, bits=bits, axis=axis)
    return get_quantizer(name, axis=axis)


def _activation_quantizer(config: QuantConfig, signed: bool, num_channels: int = 1) -> Optional[Quantizer]:
    """The activation quantizer of one site (a registry look-up); ``signed`` applies BiT's two-set rule."""
    bits, family = config.activation_bits, config.activation_quantizer
    if bits == 32:
        return None
    if family == "sign":
        return get_quantizer("sign")
    if family == "elastic":
        return get_quantizer("elastic_signed" if signed else "elastic_unsigned", num_channels=num_channels)
    if family == "lsq":
        return get_quantizer("lsq_signed" if signed else "lsq_unsigned", bits=bits)
    if family == "uniform_clip":
        return get_quantizer("uniform_clip", bits=bits)
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
    model: nn.Layer,
    config: Union[QuantConfig, str, dict],
    filter_fn: FilterFn = quantization_role,
    *,
    ffn_input_unsigned: Optional[bool] = None,
) -> nn.Layer:
    """Swap a PaddleNLP BERT's layers for their quantized versions (in place) and return it.

    The student keeps the class tree and parameter names of ``model`` (weights are copied), so
    ``save_pretrained`` / :func:`paddle_binbert.load_model` round-trip it; the QuantConfig is
    stored in ``model.config.binbert_quant_config``. ``filter_fn(name, layer)`` (``name`` relative to
    the ``BertModel``) gives each sublayer its role (:data:`QUANTIZATION_ROLES`) or ``None`` (full
    precision): an ``"embedding"`` / ``"linear"`` gets quantized weights (and inputs), an encoder
    ``self_attn`` with role ``"attention"`` becomes a :class:`QuantMultiHeadAttention` of the configured
    variant (with ``None``, the same class without quantizers: plain softmax attention that can still
    record for distillation), and with 1-bit activations (``sign`` / ``elastic``) a ``"layer_norm"``
    becomes an :class:`~paddle_binbert.quant.EngineLayerNorm` (the packed engine's rounding; same
    parameters and gradients). Where a custom filter differs from :func:`quantization_role`, the
    difference is recorded in ``model.config.binbert_quant_filter`` and replayed on loading.

    Args:
        model: ``BertModel``, ``BertForSequenceClassification`` or ``BertForQuestionAnswering``.
        config: a QuantConfig, a preset name (``"bibert"``), a YAML path or a dict.
        filter_fn: decides what is quantized; default :func:`quantization_role`.
        ffn_input_unsigned: force the FFN2-input set; default: unsigned iff the FFN uses ReLU.
    """
    config = QuantConfig.resolve(config)
    bert = get_bert(model)
    existing = quant_config_of(model)
    if existing is not None:
        raise ValueError(f"{type(model).__name__} is already quantized ({existing.name})")
    if getattr(bert, "fuse", False):
        raise ValueError("fused encoder layers (config.fuse=True) cannot be quantized; build the model with fuse=False")
    roles, overrides = _roles(bert, filter_fn)

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
        role = roles.get(name)
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
            if type(layer) is nn.LayerNorm and roles.get(name) == "layer_norm":
                set_sublayer(bert, name, EngineLayerNorm.from_layer_norm(layer))

    for i, layer in enumerate(bert.encoder.layers):
        if roles.get(f"encoder.layers.{i}.self_attn") != "attention":
            layer.self_attn = QuantMultiHeadAttention(layer.self_attn, "quant")  # full precision
            continue
        variant = config.attention
        # per-channel Q/K/V quantizers get the projections' real output width: hidden_size, or
        # kept_heads * head_dim for a half-width model (splitting.half_width)
        width = int(layer.self_attn.q_proj.weight.shape[1])
        qkv = [_activation_quantizer(config, signed=True, num_channels=width) for _ in range(3)]
        prob = None if variant == "bi" else _activation_quantizer(config, signed=False, num_channels=1)
        layer.self_attn = QuantMultiHeadAttention(layer.self_attn, variant, *qkv, prob_quantizer=prob)

    setattr(model.config, QUANT_CONFIG_KEY, config.to_dict())
    if overrides:
        setattr(model.config, FILTER_KEY, overrides)
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
