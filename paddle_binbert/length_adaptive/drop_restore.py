"""Drop-and-Restore: a length-adaptive forward pass of a (quantized) PaddleNLP BERT.

Length-Adaptive Transformer (Kim & Cho, "Length-Adaptive Transformer: Train Once with Length Drop,
Use Anytime with Search", ACL 2021), as used by Dynamic-TinyBERT (Guskin et al., 2021).

A length configuration is a non-increasing tuple ``(l_1, ..., l_L)`` of token budgets, one per
encoder layer. With ``n_0`` the padded input length and ``n_i = min(l_i, n_{i-1})``:

* layer ``i``'s self-attention runs over the ``n_{i-1}`` tokens kept so far (so the first layer's
  attention sees every token);
* the significance of token ``j`` is the attention probability it receives in that attention,
  summed over heads and (real, non-padding) queries:
  ``s_j = sum_h sum_q P[h, q, j]``; padding tokens get ``s_j = -1`` (below any real token, so
  padding is never kept over a real token) and ``[CLS]`` (position 0) gets ``+inf`` (always kept);
* the attention output (after residual and LayerNorm) is gathered to the ``n_i`` most significant
  tokens, kept in their original order, before the feed-forward block; the mask is gathered
  alike. Ties are broken in favour of the earlier position.

So the keys of layer ``i``'s attention are the outputs of layer ``i - 1``: the significance used to
select layer ``i``'s tokens is the attention the outputs of layer ``i - 1`` receive.

What "attention probability" means per attention type:

* ``paddle.nn.MultiHeadAttention`` (FP BERT): the softmax probabilities it returns with
  ``need_weights`` (after attention dropout in training mode);
* :class:`~paddle_binbert.models.QuantMultiHeadAttention` ``quant`` / ``bit``: ``softmax(S + M)``
  computed from the recorded masked scores, i.e. the probabilities *before* the probability
  quantizer (BiT's elastic binarization would leave only the values {0, alpha});
* ``bi`` (BiBERT Bi-Attention): the binarized attention the layer actually uses,
  ``A = 1[S + M > 0]``, so ``s_j`` counts the (head, query) pairs attending to token ``j``.

Restore (span tasks): every position's vector at the end is the output of the last layer it went
through completely (the output of layer ``i - 1`` for a token dropped at layer ``i``), scattered back
to its position, so that every token gets a start/end logit.

LayerDrop (Fan et al., "Reducing Transformer Depth on Demand with Structured Dropout", ICLR 2020):
a skipped layer is the identity and drops no tokens (the next executed layer applies its own budget).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.layer.transformer import _convert_attention_mask
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification, BertModel

from ..engine.layout import check_length_config  # noqa: F401 - Paddle-free, shared with the engine and runtime
from ..models.attention import QuantMultiHeadAttention
from ..models.quantize import get_bert

__all__ = [
    "LengthAdaptiveOutput",
    "check_length_config",
    "extended_attention_mask",
    "attention_significance",
    "select_tokens",
    "gather_tokens",
    "restore_tokens",
    "length_adaptive_forward",
]

#: significance given to padding keys; any real token has s_j >= 0
PAD_SIGNIFICANCE = -1.0
#: significance given to [CLS] (position 0)
CLS_SIGNIFICANCE = 1e30


@dataclass
class LengthAdaptiveOutput:
    """Outputs of :func:`length_adaptive_forward`.

    Attributes:
        logits: classification logits ``[B, num_labels]`` (BertForSequenceClassification) or None.
        start_logits / end_logits: ``[B, N]`` (BertForQuestionAnswering, after Restore) or None.
        sequence_output: last hidden states, ``[B, n_L, H]`` (kept tokens only) or ``[B, N, H]``
            when restored.
        pooled_output: the pooler output ``[B, H]`` (from [CLS], always kept).
        kept_positions: per executed layer, the original positions ``[B, n_i]`` of the tokens its
            feed-forward block processed.
        lengths: the token count ``n_i`` after each layer (skipped layers repeat the previous count).
    """

    logits: Optional[paddle.Tensor] = None
    start_logits: Optional[paddle.Tensor] = None
    end_logits: Optional[paddle.Tensor] = None
    sequence_output: Optional[paddle.Tensor] = None
    pooled_output: Optional[paddle.Tensor] = None
    kept_positions: List[paddle.Tensor] = field(default_factory=list)
    lengths: List[int] = field(default_factory=list)


def extended_attention_mask(
    bert: BertModel, input_ids: paddle.Tensor, attention_mask: Optional[paddle.Tensor]
) -> paddle.Tensor:
    """The additive mask BertModel.forward builds: ``M = (1 - m) * -1e4`` as ``[B, 1, 1, N]``.

    ``attention_mask`` None derives ``m`` from the pad id; a 2-D 0/1 mask is converted; a 4-D mask
    is converted like ``paddle.nn.TransformerEncoderLayer`` does (bool/int -> additive).
    """
    if attention_mask is None:
        dtype = bert.pooler.dense.weight.dtype
        mask = (input_ids == bert.pad_token_id).astype(dtype) * -1e4
        return paddle.unsqueeze(mask, axis=[1, 2])
    if attention_mask.ndim == 2:
        mask = attention_mask.unsqueeze(axis=[1, 2]).astype(paddle.get_default_dtype())
        return (1.0 - mask) * -1e4
    if attention_mask.ndim != 4:
        raise ValueError(f"attention_mask must be 2-D [B, N] or 4-D [B, 1, 1|N, N], got shape {attention_mask.shape}")
    return _convert_attention_mask(attention_mask, paddle.get_default_dtype())


def _key_validity(mask: paddle.Tensor) -> paddle.Tensor:
    """``[B, N]`` bool: True where the additive mask lets some query attend to the key (a real token)."""
    return mask.max(axis=[1, 2]) > -1.0


def _attention_probabilities(attn: nn.Layer, x: paddle.Tensor, mask: paddle.Tensor) -> Tuple[paddle.Tensor, Any]:
    """Run the self-attention ``attn`` on ``x``; return its output and ``[B, heads, N, N]`` probabilities
    (see the module docstring for what they are per attention type)."""
    if isinstance(attn, QuantMultiHeadAttention):
        record, last, need = attn.record, attn.last_record, attn.need_weights
        attn.record, attn.need_weights = True, False
        try:
            out = attn(x, x, x, mask, None)
            scores = attn.last_record.scores.detach()
        finally:
            attn.record, attn.last_record, attn.need_weights = record, last, need
        if attn.variant == "bi":
            return out, (scores > 0).astype(x.dtype)
        return out, F.softmax(scores)
    if not hasattr(attn, "need_weights"):
        raise TypeError(
            f"{type(attn).__name__} exposes no attention weights (no need_weights); the length-adaptive "
            "forward supports paddle.nn.MultiHeadAttention and QuantMultiHeadAttention"
        )
    need = attn.need_weights
    attn.need_weights = True
    try:
        outputs = attn(x, x, x, mask, None)
    finally:
        attn.need_weights = need
    return outputs[0], outputs[1].detach()


def attention_significance(probs: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
    """Token significance ``s_j = sum_h sum_{q real} P[h, q, j]`` (Length-Adaptive Transformer, Kim & Cho 2021).

    Args:
        probs: ``[B, heads, N, N]`` attention probabilities (queries x keys).
        mask: the additive mask ``[B, 1, 1|N, N]`` (0 real, large negative padding).

    Returns:
        ``[B, N]`` float32: padding keys get ``-1`` (below every real token), position 0 ([CLS])
        ``1e30`` (always kept).
    """
    valid = _key_validity(mask)
    query_weight = valid.astype(probs.dtype).unsqueeze([1, 3])  # [B, 1, N, 1]
    sig = (probs * query_weight).sum(axis=[1, 2]).astype("float32")
    sig = paddle.where(valid, sig, paddle.full_like(sig, PAD_SIGNIFICANCE))
    cls = paddle.zeros_like(sig)
    cls[:, 0] = 1.0
    return paddle.where(cls > 0, paddle.full_like(sig, CLS_SIGNIFICANCE), sig)


def select_tokens(significance: paddle.Tensor, keep: int) -> paddle.Tensor:
    """Indices ``[B, keep]`` of the ``keep`` most significant tokens of each row, in ascending position
    order (ties: the earlier position wins)."""
    order = paddle.argsort(significance, axis=-1, descending=True, stable=True)[:, :keep]
    return paddle.sort(order, axis=-1)


def gather_tokens(x: paddle.Tensor, index: paddle.Tensor, axis: int = 1) -> paddle.Tensor:
    """``x`` restricted to the token indices ``index`` ``[B, k]`` along ``axis`` (other dims kept)."""
    shape = [1] * x.ndim
    shape[0] = index.shape[0]
    shape[axis] = index.shape[1]
    idx = index.reshape(shape)
    target = list(x.shape)
    target[axis] = index.shape[1]
    return paddle.take_along_axis(x, idx.expand(target), axis=axis)


def restore_tokens(buffer: paddle.Tensor, positions: paddle.Tensor, values: paddle.Tensor) -> paddle.Tensor:
    """Scatter ``values`` ``[B, k, H]`` back into ``buffer`` ``[B, N, H]`` at ``positions`` ``[B, k]``
    (out of place; gradients flow to both)."""
    idx = positions.unsqueeze(-1).expand([positions.shape[0], positions.shape[1], buffer.shape[-1]])
    return paddle.put_along_axis(buffer, idx, values, axis=1, reduce="assign")


def _encoder_layer(
    layer: nn.Layer,
    x: paddle.Tensor,
    mask: paddle.Tensor,
    keep: Optional[int],
) -> Tuple[paddle.Tensor, paddle.Tensor, Optional[paddle.Tensor]]:
    """One ``paddle.nn.TransformerEncoderLayer`` (the ops of PaddleNLP's patched forward, in order)
    with the token drop between the attention and the feed-forward block.

    Returns ``(output, mask, kept index or None)``.
    """
    for name in ("self_attn", "norm1", "norm2", "linear1", "linear2", "dropout1", "dropout2", "dropout"):
        if not hasattr(layer, name):
            raise TypeError(f"{type(layer).__name__} has no {name!r}: not a TransformerEncoderLayer (fused layers?)")
    residual = x
    if layer.normalize_before:
        x = layer.norm1(x)
    if keep is not None and keep < x.shape[1]:
        attn_out, probs = _attention_probabilities(layer.self_attn, x, mask)
        index = select_tokens(attention_significance(probs, mask), keep)
    else:
        attn_out = layer.self_attn(x, x, x, mask, None)
        if isinstance(attn_out, tuple):
            attn_out = attn_out[0]
        index = None
    x = residual + layer.dropout1(attn_out)
    if not layer.normalize_before:
        x = layer.norm1(x)

    if index is not None:
        x = gather_tokens(x, index, axis=1)
        mask = gather_tokens(mask, index, axis=3)
        if mask.shape[2] > 1:
            mask = gather_tokens(mask, index, axis=2)

    residual = x
    if layer.normalize_before:
        x = layer.norm2(x)
    x = layer.linear2(layer.dropout(layer.activation(layer.linear1(x))))
    x = residual + layer.dropout2(x)
    if not layer.normalize_before:
        x = layer.norm2(x)
    return x, mask, index


def length_adaptive_forward(
    model: nn.Layer,
    input_ids: paddle.Tensor,
    token_type_ids: Optional[paddle.Tensor] = None,
    attention_mask: Optional[paddle.Tensor] = None,
    length_config: Optional[Sequence[int]] = None,
    layer_skip: Optional[Sequence[bool]] = None,
    position_ids: Optional[paddle.Tensor] = None,
    restore: Optional[bool] = None,
) -> LengthAdaptiveOutput:
    """Forward pass of a PaddleNLP BERT (FP or quantized) with Drop-and-Restore and LayerDrop.

    Walks ``model.bert.embeddings`` and ``encoder.layers`` itself (the model classes are not changed);
    see the module docstring for the selection rule ``s_j = sum_h sum_q P[h, q, j]`` (Kim & Cho 2021).
    With ``length_config`` None (or every budget >= the input length) and no skipped layer, the
    result equals the model's own forward pass.

    Args:
        model: ``BertModel``, ``BertForSequenceClassification`` or ``BertForQuestionAnswering``
            (quantized by :func:`~paddle_binbert.quantize_model` or not).
        input_ids, token_type_ids, attention_mask, position_ids: as for the model (mask 2-D 0/1 or 4-D).
        length_config: ``(l_1, ..., l_L)`` non-increasing token budgets, or None for all tokens.
        layer_skip: ``L`` booleans, True = skip that layer (LayerDrop), or None.
        restore: scatter dropped vectors back to their positions at the end (default: True for
            ``BertForQuestionAnswering``, else False).

    Returns:
        :class:`LengthAdaptiveOutput`.
    """
    bert = get_bert(model)
    if getattr(bert, "fuse", False):
        raise ValueError("fused encoder layers (config.fuse=True) are not supported by the length-adaptive forward")
    layers = bert.encoder.layers
    config = check_length_config(length_config, len(layers))
    if layer_skip is not None and len(layer_skip) != len(layers):
        raise ValueError(f"layer_skip has {len(layer_skip)} entries; the model has {len(layers)} layers")
    if restore is None:
        restore = isinstance(model, BertForQuestionAnswering)

    mask = extended_attention_mask(bert, input_ids, attention_mask)
    x = bert.embeddings(input_ids=input_ids, position_ids=position_ids, token_type_ids=token_type_ids)
    batch, seq_len = input_ids.shape[0], input_ids.shape[1]
    positions = paddle.arange(seq_len, dtype="int64").unsqueeze(0).expand([batch, seq_len])
    buffer = x if restore else None
    out = LengthAdaptiveOutput()
    for i, layer in enumerate(layers):
        if layer_skip is not None and layer_skip[i]:
            out.lengths.append(x.shape[1])
            continue
        keep = None if config is None else config[i]
        layer_input = x
        x, mask, index = _encoder_layer(layer, x, mask, keep)
        if index is not None:
            if restore:
                buffer = restore_tokens(buffer, positions, layer_input)
            positions = paddle.take_along_axis(positions, index, axis=1)
        out.kept_positions.append(positions)
        out.lengths.append(x.shape[1])
    if getattr(bert.encoder, "norm", None) is not None:
        x = bert.encoder.norm(x)
    if restore and x.shape[1] < seq_len:
        x = restore_tokens(buffer, positions, x)
    out.sequence_output = x
    out.pooled_output = bert.pooler(x)

    if isinstance(model, BertForSequenceClassification):
        out.logits = model.classifier(model.dropout(out.pooled_output))
    elif isinstance(model, BertForQuestionAnswering):
        if not restore:
            raise ValueError("BertForQuestionAnswering needs restore=True (a start/end logit for every token)")
        logits = paddle.transpose(model.classifier(x), perm=[2, 0, 1])
        out.start_logits, out.end_logits = paddle.unstack(logits, axis=0)
    return out
