"""Self-attention variants of specs/attention.md, as one drop-in for `paddle.nn.MultiHeadAttention`.

Per head (size d), with Q, K, V the outputs of the (quantized) q/k/v linears and M the additive
mask (0 for real tokens, -1e4 for padding keys):

- ``quant``  (BinaryBERT, k-bit):  P = softmax(Qq Kq^T / sqrt(d) + M); context = Q_a(P) Vq.
  With 32-bit activations this is exactly PaddleNLP's attention.
- ``bi``     (BiBERT, Bi-Attention; Qin et al., 2022, eq. 8): S = sgn(Q) sgn(K)^T / sqrt(d) + M;
  A = bool(S) = 1[S > 0] (STE 1[|S| <= 1]); context = A sgn(V), not normalised. In training,
  attention dropout acts on S before bool(), as in the BiBERT release: A = bool(dropout(S)), so a
  dropped score gives A = 0 and A stays in {0, 1} (no 1/(1-p) rescaling of A).
- ``bit``    (BiT): Q, K, V elastic-signed; P = softmax(Qq Kq^T / sqrt(d) + M);
  context = elastic_unsigned(P) Vq (probabilities in {0, alpha}).

Elastic binary Q, K, V and probabilities (BiT; the packed engine's ``softmax_elastic`` attention) are
computed with the engine's float expressions, so that every quantizer decision (the probability
levels 1[(P - beta_p) / alpha_p >= 1/2], the out-projection's sgn(context - beta)) is the engine's:
with Qq = a_q sgn(Q - beta_q) etc.,

    S = fl(dot_qk * fl(fl(a_q / sqrt(d)) * a_k)) + M      (dot_qk = sgn(Q - beta_q) sgn(K - beta_k)^T, integers)
    P = engine_softmax(S)                                 (the engine's exp, summation order and division)
    context = fl(dot_pv * fl(a_p * a_v))                  (dot_pv = 1[Pq != 0] sgn(V - beta_v), integers)

(:func:`~paddle_binbert.quant.functional.binary_matmul`,
:func:`~paddle_binbert.quant.functional.engine_softmax`); mathematically the formulas above, with
the float formulation's gradients bit for bit. In training mode P is ``F.softmax(S)`` (the engine's
exp costs about 20 times more), and with attention dropout active the context is the float product
of the dropped-out probabilities and Vq, as before.

Padding, in every variant: a masked key (additive mask M <= -1, e.g. PaddleNLP's -1e4) contributes
nothing, whatever the probability quantizer: the quantized probabilities are multiplied by
1[M > -1] after quantization, so Q_a(0) != 0 (the ``bwn`` preset's sgn(0) = +1, an elastic beta
below -alpha/2) cannot attend a padded key. Unmasked entries are multiplied by 1 (unchanged); FP
probabilities (no quantizer) are left as softmax gives them (exactly 0 at a -1e4 key). The
``quant`` and ``bit`` variants apply attention dropout (training only) to these probabilities.

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

from ..quant import functional as QF
from ..quant.quantizers import BoolQuantizer, ElasticQuantizer, Quantizer

__all__ = ["AttentionRecord", "QuantMultiHeadAttention", "MASKED_KEY_THRESHOLD"]

#: an additive mask entry at or below this masks its key (PaddleNLP pads with -1e4, bool masks give
#: -1e9); the packed engine and Drop-and-Restore use the same rule (a real token has M > -1)
MASKED_KEY_THRESHOLD = -1.0


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

    def _dropout(self, x: paddle.Tensor) -> paddle.Tensor:
        """Attention dropout (training only; kept entries scaled by 1 / (1 - p))."""
        if not self.dropout:
            return x
        return F.dropout(x, self.dropout, training=self.training, mode="upscale_in_train")

    def _zero_masked_keys(self, probs: paddle.Tensor, mask: Optional[paddle.Tensor]) -> paddle.Tensor:
        """``Q_a(P) * 1[M > -1]``: a quantized probability of a masked key is 0 (specs/attention.md,
        "Padding"). ``M`` broadcasts to ``[B, heads, L, L]``; unmasked entries are multiplied by 1.
        Unquantized (FP) probabilities are returned as they are: softmax already gives exactly 0 at a
        -1e4 key, and the FP path stays PaddleNLP's attention operation for operation."""
        if mask is None or self.prob_quantizer is None:
            return probs
        return probs * (mask > MASKED_KEY_THRESHOLD).astype(probs.dtype)

    def elastic_binary(self) -> bool:
        """Whether Q, K, V are signed and the probabilities unsigned elastic binary activations (BiT, a
        softmax variant): then scores, probabilities and context use the packed engine's expressions."""
        qkv = (self.query_quantizer, self.key_quantizer, self.value_quantizer)
        prob = self.prob_quantizer
        return (
            self.variant != "bi"
            and all(isinstance(q, ElasticQuantizer) and q.signed for q in qkv)
            and isinstance(prob, ElasticQuantizer)
            and not prob.signed
        )

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

        engine = self.elastic_binary()
        if self.variant == "bi":
            scores = paddle.matmul(qq, kq, transpose_y=True) * (self.head_dim**-0.5)
        elif engine:  # integer dot product, then the engine's folded scale fl(fl(a_q / sqrt d) * a_k)
            a_q, a_k = self.query_quantizer.alpha, self.key_quantizer.alpha
            scores = QF.binary_matmul(qq, kq, a_q, a_k, pre_scale=self.head_dim**-0.5, transpose_y=True)
        else:  # same operation order as paddle.nn.MultiHeadAttention, for bit-exact FP
            scores = paddle.matmul(qq * (self.head_dim**-0.5), kq, transpose_y=True)
        mask = None if attn_mask is None else _convert_attention_mask(attn_mask, scores.dtype)
        if mask is not None:
            scores = scores + mask

        if self.variant == "bi":
            # BiBERT release: dropout on the masked scores, then bool(); A stays in {0, 1}
            dropped = self._dropout(scores)
            probs = self._quant(self.prob_quantizer, dropped)
            probs = self._zero_masked_keys(probs, mask)
            context = paddle.matmul(probs, vq)
        elif engine:
            # the engine's softmax in eval mode; training keeps F.softmax (the exp emulation costs ~20x,
            # and the dropped-out training forward is not the engine's anyway); same gradients
            softmax = F.softmax if self.training else QF.engine_softmax
            probs = self._zero_masked_keys(self.prob_quantizer(softmax(scores)), mask)
            if self.training and self.dropout:  # dropped-out probabilities are no longer binary
                probs = self._dropout(probs)
                context = paddle.matmul(probs, vq)
            else:  # integer dot product, then the engine's folded scale fl(a_p * a_v)
                a_p, a_v = self.prob_quantizer.alpha, self.value_quantizer.alpha
                context = QF.binary_matmul(probs, vq, a_p, a_v, x_unsigned=True)
        else:
            probs = self._quant(self.prob_quantizer, F.softmax(scores))
            probs = self._dropout(self._zero_masked_keys(probs, mask))
            context = paddle.matmul(probs, vq)

        out = context.transpose([0, 2, 1, 3])
        out = out.reshape([0, 0, self.embed_dim])
        out = self.out_proj(out)

        if self.record:
            self.last_record = AttentionRecord(query=q, key=k, value=v, scores=scores)
        return (out, probs) if self.need_weights else out

    def extra_repr(self) -> str:
        return f"variant={self.variant}, embed_dim={self.embed_dim}, num_heads={self.num_heads}"
