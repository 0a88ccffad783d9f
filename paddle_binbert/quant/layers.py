"""Quantized layers taking a weight quantizer and an input quantizer (larq's
``kernel_quantizer`` / ``input_quantizer`` pattern): y = Q_a(x) @ Q_w(W) + b.

``None`` for a quantizer means full precision, so a ``QuantLinear`` with both ``None`` is
exactly ``nn.Linear``. Parameter names (``weight``, ``bias``) are those of the Paddle layers
they replace, so state dicts of FP and quantized models line up.

When both operands are binary (a 1-bit weight ``alpha_j * (+-1)`` and a sign / bool / elastic
activation ``a * (+-1)`` or ``a * {0, 1}``) the product is computed as the packed engine computes it,
integer dot product first: y = (t @ s) * (a * alpha) + b (:func:`~.functional.binary_linear`), with
the gradients of the float formulation.

:class:`EngineLayerNorm` is ``nn.LayerNorm`` rounded as the packed engine rounds it (the LayerNorms of
a student with binary activations, whose outputs go straight into sign quantizers).
"""

from __future__ import annotations

from typing import Optional, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from . import functional as QF
from .quantizers import (
    BiBertWeightQuantizer,
    BoolQuantizer,
    BwnCenteredWeightQuantizer,
    BwnWeightQuantizer,
    ElasticQuantizer,
    Quantizer,
    SignQuantizer,
)

__all__ = ["QuantLinear", "QuantEmbedding", "EngineLayerNorm", "BINARY_WEIGHT_QUANTIZERS"]

#: weight quantizers whose output is ``alpha * (+-1)`` (one alpha per output column at axis 0 / None)
BINARY_WEIGHT_QUANTIZERS = (BiBertWeightQuantizer, BwnWeightQuantizer, BwnCenteredWeightQuantizer)


class QuantLinear(nn.Layer):
    """Linear layer with quantized weight and input: y = Q_a(x) @ Q_w(W) + b (b stays FP).

    W has Paddle's ``[in, out]`` layout; per-output-channel weight scales reduce axis 0.

    Binary x binary (weight quantizer ``bibert`` / ``bwn`` / ``bwn_centered`` over axis 0 or the
    whole matrix; input quantizer ``sign``, ``bool`` or ``elastic``): with Q_w(W) = alpha_j * s_ij and
    Q_a(x) = a * t (t in {-1, +1}, or {0, 1} for bool / unsigned elastic; a = 1 for sign / bool),

        y_j = (t @ s)_j * (a * alpha_j) + b_j,

    the integer product first and the scales after, as the packed engine computes it (exact
    ties: a zero dot product with a zero bias gives exactly 0). The gradients are those of
    F.linear(Q_a(x), Q_w(W), b), so every straight-through estimator is unchanged.
    ``folded_binary_weight`` marks a layer whose ``weight`` already holds a binary Q_w(W) and whose
    weight quantizer was removed (static export, :func:`~paddle_binbert.export.folded_weight_quantizers`).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        weight_quantizer: Optional[Quantizer] = None,
        input_quantizer: Optional[Quantizer] = None,
        bias: bool = True,
    ):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = self.create_parameter([in_features, out_features])
        self.bias = self.create_parameter([out_features], is_bias=True) if bias else None
        self.weight_quantizer = weight_quantizer
        self.input_quantizer = input_quantizer
        self.folded_binary_weight = False

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        weight_quantizer: Optional[Quantizer] = None,
        input_quantizer: Optional[Quantizer] = None,
    ) -> QuantLinear:
        """A QuantLinear holding a copy of ``linear``'s weight and bias."""
        in_features, out_features = linear.weight.shape
        layer = cls(in_features, out_features, weight_quantizer, input_quantizer, bias=linear.bias is not None)
        layer.weight.set_value(linear.weight.detach().clone())
        if linear.bias is not None:
            layer.bias.set_value(linear.bias.detach().clone())
        return layer

    def quantized_weight(self) -> paddle.Tensor:
        """Q_w(W), the weight the forward pass multiplies with."""
        return self.weight if self.weight_quantizer is None else self.weight_quantizer(self.weight)

    def has_binary_weight(self) -> bool:
        """Whether Q_w(W) is alpha_j * (+-1) with one alpha per output column (or one in all)."""
        q = self.weight_quantizer
        if q is None:
            return self.folded_binary_weight
        return isinstance(q, BINARY_WEIGHT_QUANTIZERS) and q.axis in (None, 0, -2)

    def _binary_input(self) -> Optional[Tuple[Optional[paddle.Tensor], bool]]:
        """``(a, unsigned)`` of a binary input quantizer (``a`` None for scale 1), else None.
        Read after the quantizer ran (an elastic quantizer may set ``a`` from its first batch)."""
        q = self.input_quantizer
        if isinstance(q, SignQuantizer):
            return None, False
        if isinstance(q, BoolQuantizer):
            return None, True
        if isinstance(q, ElasticQuantizer):
            return q.alpha, not q.signed
        return None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        wq = self.quantized_weight()
        binary_input = self._binary_input() if self.has_binary_weight() else None
        if binary_input is None:
            return F.linear(x, wq, self.bias)
        x_scale, unsigned = binary_input
        return QF.binary_linear(x, wq, self.bias, x_scale, unsigned)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class QuantEmbedding(nn.Layer):
    """Embedding whose looked-up rows are quantized: out[t] = Q_w(E)[ids[t]].

    The embedding quantizers are row-wise (one scale per token row, specs/quantizers.md), so
    quantizing only the gathered rows gives the same values as quantizing the whole table, at
    a fraction of the cost; the weight quantizer is called with rows on the last axis.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, weight_quantizer: Optional[Quantizer] = None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = self.create_parameter([num_embeddings, embedding_dim])
        self.weight_quantizer = weight_quantizer

    @classmethod
    def from_embedding(cls, emb: nn.Embedding, weight_quantizer: Optional[Quantizer] = None) -> QuantEmbedding:
        """A QuantEmbedding holding a copy of ``emb``'s table."""
        num, dim = emb.weight.shape
        if getattr(emb, "_padding_idx", None) is not None:
            raise ValueError("QuantEmbedding does not support padding_idx (BERT's word embedding has none)")
        layer = cls(num, dim, weight_quantizer)
        layer.weight.set_value(emb.weight.detach().clone())
        return layer

    def quantized_weight(self) -> paddle.Tensor:
        """The whole quantized table Q_w(E) (used for export; the forward pass gathers first)."""
        return self.weight if self.weight_quantizer is None else self.weight_quantizer(self.weight)

    def forward(self, ids: paddle.Tensor) -> paddle.Tensor:
        rows = F.embedding(ids, self.weight)
        return rows if self.weight_quantizer is None else self.weight_quantizer(rows)

    def extra_repr(self) -> str:
        return f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}"


class EngineLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the last axis computed with the packed engine's float expressions.

    y = (x - mu) / sqrt(var + eps) * gamma + beta, evaluated as
    ``fl(fl(fl(c * fl(1 / fl(sqrt(fl(var + eps))))) * gamma) + beta)`` with ``c = fl(x - mu)`` and the
    statistics mu, var accumulated in float64 (:func:`~.functional.engine_layer_norm`): in a binarized
    student every LayerNorm output is binarized next (``sgn(y - beta_q)``), and Paddle's own kernel
    rounds differently from the engine in the last bit, flipping the bits that sit at the threshold.

    Same parameters (``weight``, ``bias``), epsilon and state-dict names as the ``nn.LayerNorm`` it
    replaces; gradients are exactly ``F.layer_norm``'s. A LayerNorm over several trailing axes, or one
    without weight or bias, is computed by ``nn.LayerNorm`` itself.
    """

    @classmethod
    def from_layer_norm(cls, norm: nn.LayerNorm) -> EngineLayerNorm:
        """An EngineLayerNorm holding a copy of ``norm``'s weight and bias (same shape and epsilon)."""
        layer = cls(
            norm._normalized_shape,
            epsilon=norm._epsilon,
            weight_attr=None if norm.weight is not None else False,
            bias_attr=None if norm.bias is not None else False,
        )
        for name in ("weight", "bias"):
            src = getattr(norm, name)
            if src is not None:
                getattr(layer, name).set_value(src.detach().clone())
        return layer

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if len(self._normalized_shape) != 1:
            return super().forward(x)
        return QF.engine_layer_norm(x, self.weight, self.bias, self._epsilon)
