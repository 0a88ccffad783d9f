"""Self-attention variants of specs/attention.md, as one drop-in for `paddle.nn.MultiHeadAttention`.

Per head (size d), with Q, K, V the outputs of the (quantized) q/k/v linears and M the additive
mask (0 for real tokens, -1e4 for padding keys):

- ``quant``  (BinaryBERT, k-bit):  P = softmax(Qq Kq^T / sqrt(d) + M); context = Q_a(P) Vq.
  With 32-bit activations this is exactly PaddleNLP's attention.
- ``bi``     (BiBERT, Bi-Attention): S = sgn(Q) sgn(K)^T / sqrt(d) + M; A = bool(S) = 1[S > 0]
  (STE 1[|S| <= 1]); context = A sgn(V), not normalised.
- ``bit``    (BiT): Q, K, V elastic-signed; P = softmax(Qq Kq^T / sqrt(d) + M);
  context = elastic_unsigned(P) Vq (probabilities in {0, alpha}).

Whatever the variant, when ``record`` is on the layer keeps an :class:`AttentionRecord` of the
last call: Q, K, V before their activation quantizer (``[B, L, hidden]``, for BiBERT's DMD) and
the masked pre-softmax scores S + M (``[B, heads, L, L]``, for TinyBERT's attention MSE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.layer.transformer import _convert_attention_mask

from ..quant.quantizers import BoolQuantizer, Quantizer

__all__ = ["AttentionRecord", "QuantMultiHeadAttention"]


@dataclass
class AttentionRecord:
    """What one attention call exposes for distillation."""

    query: paddle.Tensor  # [B, L, hidden], before the activation quantizer
    key: paddle.Tensor
    value: paddle.Tensor
    scores: paddle.Tensor  # [B, heads, L, L], pre-softmax scores + mask


class QuantMultiHeadAttention(nn.Layer):
    """Multi-head self-attention with quantized projections, Q/K/V and probabilities.

    Built from an existing ``nn.MultiHeadAttention`` (its q/k/v/out projections are reused,
    already replaced by ``QuantLinear`` by :func:`~paddle_binbert.quantize_model`), so parameter
    names are unchanged. ``forward`` has the signature PaddleNLP's encoder layer calls.
    """

    def __init__(
        self,
        attn: nn.MultiHeadAttention,
        variant: str = "quant",
        query_quantizer: Optional[Quantizer] = None,
        key_quantizer: Optional[Quantizer] = None,
        value_quantizer: Optional[Quantizer] = None,
        prob_quantizer: Optional[Quantizer] = None,
    ):
        super().__init__()
        if variant not in ("quant", "bi", "bit"):
            raise ValueError(f"unknown attention variant {variant!r}; valid: ['quant', 'bi', 'bit']")
        if getattr(attn, "_qkv_same_embed_dim", True) is False:
            raise ValueError("QuantMultiHeadAttention needs equal query/key/value widths (BERT self-attention)")
        self.variant = variant
        self.embed_dim = attn.embed_dim
        self.num_heads = attn.num_heads
        self.head_dim = attn.head_dim
        self.dropout = attn.dropout
        self.need_weights = attn.need_weights
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj
        self.query_quantizer = query_quantizer
        self.key_quantizer = key_quantizer
        self.value_quantizer = value_quantizer
        if variant == "bi" and prob_quantizer is None:
            prob_quantizer = BoolQuantizer()
        self.prob_quantizer = prob_quantizer
        self.record = False
        self.last_record: Optional[AttentionRecord] = None

    def _split_heads(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x.reshape([0, 0, self.num_heads, self.head_dim])
        return x.transpose([0, 2, 1, 3])

    @staticmethod
    def _quant(quantizer: Optional[Quantizer], x: paddle.Tensor) -> paddle.Tensor:
        return x if quantizer is None else quantizer(x)

    def forward(self, query, key=None, value=None, attn_mask=None, cache=None):
        """Self-attention over ``query`` (``key``/``value`` must be the same tensor or None)."""
        if cache is not None:
            raise NotImplementedError("QuantMultiHeadAttention does not support incremental decoding caches")
        if (key is not None and key is not query) or (value is not None and value is not query):
            raise NotImplementedError("QuantMultiHeadAttention implements self-attention only")
        q, k, v = self.q_proj(query), self.k_proj(query), self.v_proj(query)
        qq = self._split_heads(self._quant(self.query_quantizer, q))
        kq = self._split_heads(self._quant(self.key_quantizer, k))
        vq = self._split_heads(self._quant(self.value_quantizer, v))

        if self.variant == "bi":
            scores = paddle.matmul(qq, kq, transpose_y=True) * (self.head_dim**-0.5)
        else:  # same operation order as paddle.nn.MultiHeadAttention, for bit-exact FP
            scores = paddle.matmul(qq * (self.head_dim**-0.5), kq, transpose_y=True)
        if attn_mask is not None:
            scores = scores + _convert_attention_mask(attn_mask, scores.dtype)

        probs = scores if self.variant == "bi" else F.softmax(scores)
        probs = self._quant(self.prob_quantizer, probs)
        if self.dropout:
            probs = F.dropout(probs, self.dropout, training=self.training, mode="upscale_in_train")

        out = paddle.matmul(probs, vq).transpose([0, 2, 1, 3])
        out = out.reshape([0, 0, self.embed_dim])
        out = self.out_proj(out)

        if self.record:
            self.last_record = AttentionRecord(query=q, key=k, value=v, scores=scores)
        return (out, probs) if self.need_weights else out

    def extra_repr(self) -> str:
        return f"variant={self.variant}, embed_dim={self.embed_dim}, num_heads={self.num_heads}"
