"""Quantized layers taking a weight quantizer and an input quantizer (larq's
``kernel_quantizer`` / ``input_quantizer`` pattern): y = Q_a(x) @ Q_w(W) + b.

``None`` for a quantizer means full precision, so a ``QuantLinear`` with both ``None`` is
exactly ``nn.Linear``. Parameter names (``weight``, ``bias``) are those of the Paddle layers
they replace, so state dicts of FP and quantized models line up.
"""

from __future__ import annotations

from typing import Optional

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .quantizers import Quantizer

__all__ = ["QuantLinear", "QuantEmbedding"]


class QuantLinear(nn.Layer):
    """Linear layer with quantized weight and input: y = Q_a(x) @ Q_w(W) + b (b stays FP).

    W has Paddle's ``[in, out]`` layout; per-output-channel weight scales reduce axis 0.
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

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        return F.linear(x, self.quantized_weight(), self.bias)

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
