"""Ternary weight splitting (TWS; Bai et al., ACL 2021, "BinaryBERT"; specs/splitting.md).

A ternary student (``twn`` weights / embeddings at 2 bits, e.g. preset ``binarybert_ternary``)
is turned into an equivalent binary student (``bwn`` at 1 bit, preset ``binarybert``) whose
logits are those of the ternary model.  For a latent weight W with T = twn(W) = alpha *
sgn(W) * 1[|W| > Delta] (specs/splitting.md; everything below in float64):

    I = {T != 0},  J = {T == 0, W > 0},  K = {T == 0, W <= 0},  Z = J u K,  n = numel(W)
    b = (n * alpha - sum_all |W|) / (2 |Z|)          (= (alpha - mean_Z |W|) / 2 > 0)
    a = (sum_I |W| + sum_K |W| - sum_J |W|) / (2 sum_I |W|)
    on I: W1 = a W,  W2 = (1 - a) W;   on J: W1 = W + b, W2 = -b;   on K: W1 = b, W2 = W - b

so that W1 + W2 = W and bwn(W1) + bwn(W2) = T (both halves get alpha1 = alpha2 = alpha / 2;
on Z their signs cancel, on I they agree).

Model representation
--------------------
A split linear is ONE layer, :class:`SplitQuantLinear`, holding the two latent halves
``weight1`` / ``weight2`` (``[in, out]`` each), the shared input quantizer and one bias:
``y = Q_a(x) @ (bwn(W1) + bwn(W2)) + b``.  This is the paper's "two binary linears whose outputs
are summed" with their two half biases b/2 + b/2 folded into one and a single activation quantizer
(both copies see the same x, so the learned LSQ step is kept as it is); :meth:`binary_halves` gives
the two binary linears (each with bias b/2) for export.  The word embedding becomes
:class:`SplitQuantEmbedding` (row-wise TWS and row-wise ``bwn``).  The split layers and the
BinaryBERT config are recorded in ``model.config`` (``binbert_quant_config`` = the binary
QuantConfig, :data:`SPLIT_CONFIG_KEY` = which layers are split), so ``save_pretrained`` writes an
ordinary checkpoint that :func:`paddle_binbert.load_model` rebuilds exactly (it calls
:func:`apply_split_layout` after ``quantize_model`` when the config lists split layers).
"""

from __future__ import annotations

import copy
from typing import Iterable, List, Optional, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..models.quantize import QUANT_CONFIG_KEY, get_bert, quant_config_of, set_sublayer
from ..quant.config import QuantConfig
from ..quant.functional import twn_weight
from ..quant.layers import QuantEmbedding, QuantLinear
from ..quant.quantizers import Quantizer, TwnWeightQuantizer, get_quantizer

__all__ = [
    "SPLIT_CONFIG_KEY",
    "tws_split",
    "SplitQuantLinear",
    "SplitQuantEmbedding",
    "splittable_layers",
    "split_layers_of",
    "binary_config_for",
    "split_ternary_model",
    "apply_split_layout",
]

SPLIT_CONFIG_KEY = "binbert_split"
# a = 1/2 - sigma / (2 sum_I |W|) must lie strictly inside (0, 1); rows closer than this to an
# end are re-balanced (see `_balance_row`) so that the float32 halves keep their signs.
_A_MARGIN = 1e-6

ArrayLike = Union[np.ndarray, paddle.Tensor]


# --------------------------------------------------------------------------------------------
# The split of one tensor
# --------------------------------------------------------------------------------------------


def _ternary_support(w: np.ndarray, axis: Optional[int]) -> np.ndarray:
    """I = {twn(W) != 0}, evaluated by the library's own ``twn_weight`` in W's dtype.

    Using the quantizer the model actually runs (not a float64 re-evaluation) keeps elements lying
    within one ulp of Delta on the same side as in the ternary model.
    """
    dtype = w.dtype if w.dtype in (np.float32, np.float64) else np.float32
    with paddle.no_grad():
        t = twn_weight(paddle.to_tensor(w.astype(dtype, copy=False)), axis=axis)
    return t.numpy() != 0


def _balance_row(row: np.ndarray, zero: np.ndarray, sigma: float) -> Tuple[np.ndarray, float]:
    """Choose Z elements to swap (W1 <-> W2) so that sigma = sum_Z eps_e W_e is closest to 0.

    eps_e = +1 is the paper's pattern; eps_e = -1 swaps the two halves of element e (J: W1 = -b,
    W2 = W + b; K: W1 = W - b, W2 = b), which keeps W1 + W2 = W, the cancelling signs and
    |W1| + |W2| = |W| + 2b, and changes sigma by -2 eps W_e.  Swapping the largest same-sign
    elements first and stopping at the best prefix gives |sigma| <= max_Z |W| <= Delta < alpha
    <= sum_I |W|, hence a in (0, 1).
    """
    swap = np.zeros(row.shape, dtype=bool)
    idx = np.flatnonzero(zero & (row > 0 if sigma > 0 else row < 0))
    idx = idx[np.argsort(-np.abs(row[idx]), kind="stable")]
    path = sigma - np.sign(sigma) * np.concatenate([[0.0], np.cumsum(2.0 * np.abs(row[idx]))])
    k = int(np.argmin(np.abs(path)))
    swap[idx[:k]] = True
    return swap, float(path[k])


def _split_rows(w: np.ndarray, support: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """TWS of every row of ``w`` ([R, n], float64) given its ternary support I ([R, n] bool)."""
    absw = np.abs(w)
    zero = ~support
    cnt_i, cnt_z = support.sum(axis=1), zero.sum(axis=1)
    s_i = np.where(support, absw, 0.0).sum(axis=1)
    s_z = np.where(zero, absw, 0.0).sum(axis=1)
    alpha = s_i / np.maximum(cnt_i, 1)
    # b = (n alpha - sum|W|) / (2|Z|) = (|Z| alpha - sum_Z |W|) / (2|Z|) since sum_I |W| = |I| alpha;
    # the second form avoids a cancellation.  Empty Z: b is never used, set to 0.
    b = np.where(cnt_z > 0, (cnt_z * alpha - s_z) / (2.0 * np.maximum(cnt_z, 1)), 0.0)
    sigma = np.where(zero, w, 0.0).sum(axis=1)  # = sum_J |W| - sum_K |W| for the paper's pattern
    swap = np.zeros(w.shape, dtype=bool)
    has_i = s_i > 0
    for r in np.flatnonzero(has_i & (np.abs(sigma) >= s_i * (1.0 - 2.0 * _A_MARGIN))):
        swap[r], sigma[r] = _balance_row(w[r], zero[r], sigma[r])
        if not abs(sigma[r]) < s_i[r]:  # unreachable when I is a threshold set (all |W_I| > all |W_Z|)
            raise ValueError(f"row {r}: no sign-preserving ternary weight split exists for this support")
    # a = (sum_I + sum_K - sum_J) / (2 sum_I) = 1/2 - sigma / (2 sum_I); all-zero rows (I empty): 1/2.
    a = np.where(has_i, 0.5 - sigma / (2.0 * np.where(has_i, s_i, 1.0)), 0.5)[:, None]
    b = b[:, None]
    positive = w > 0
    w1 = np.where(support, a * w, np.where(positive, w + b, b))
    w2 = np.where(support, (1.0 - a) * w, np.where(positive, -b, w - b))
    return np.where(swap, w2, w1), np.where(swap, w1, w2)


def tws_split(weight: ArrayLike, axis: Optional[int] = None) -> Tuple[ArrayLike, ArrayLike]:
    """Ternary weight splitting W -> (W1, W2) (BinaryBERT, Bai et al., ACL 2021).

    With T = twn(W) (scale alpha), I = {T != 0}, J = {T == 0, W > 0}, K = {T == 0, W <= 0}:
    b = (n alpha - sum|W|) / (2|Z|),  a = (sum_I|W| + sum_K|W| - sum_J|W|) / (2 sum_I|W|);
    on I: W1 = aW, W2 = (1-a)W;  on J: W1 = W + b, W2 = -b;  on K: W1 = b, W2 = W - b.
    Then W1 + W2 = W and bwn(W1) + bwn(W2) = twn(W) (scales alpha/2 each).

    Args:
        weight: numpy array or paddle Tensor (float32 / float64); the result has the same type,
            dtype and shape.  The arithmetic runs in float64; I is taken from the library's
            ``twn_weight`` in the input dtype (the quantizer the model runs).
        axis: ``None`` = one split of the whole matrix (linears, whole-matrix twn/bwn); an int =
            the statistics (alpha, Delta, a, b) are reduced over that axis, e.g. ``-1`` = every
            row of an embedding table split on its own.

    Degenerate cases (never NaN):
        - Z empty (every |W| > Delta): b is unused, a = 1/2, so W1 = W2 = W / 2.
        - all-zero W (or row): twn gives 0 (alpha = 0); a = 1/2, b = 0, so W1 = W2 = 0.
        - a outside (0, 1) (|sum_J|W| - sum_K|W|| >= sum_I|W|, possible only for small or
          very skewed rows): the paper's closed form would flip signs on I; some elements of the
          larger of J / K then take the mirrored pattern (W1 and W2 swapped, see ``_balance_row``),
          which keeps b, both properties and the alpha/2 scales and brings a back into (0, 1).
    """
    is_tensor = isinstance(weight, paddle.Tensor)
    w_in = weight.detach().numpy() if is_tensor else np.asarray(weight)
    if not np.issubdtype(w_in.dtype, np.floating):
        raise TypeError(f"tws_split needs a floating-point weight, got {w_in.dtype}")
    if w_in.ndim == 0 or w_in.size == 0:
        raise ValueError(f"tws_split needs a non-empty weight with at least one axis, got shape {list(w_in.shape)}")
    support = _ternary_support(w_in, axis)
    w64 = w_in.astype(np.float64)
    if axis is None:
        w1, w2 = _split_rows(w64.reshape(1, -1), support.reshape(1, -1))
        w1, w2 = w1.reshape(w_in.shape), w2.reshape(w_in.shape)
    else:
        moved = np.moveaxis(w64, axis, -1)
        rows, mask = moved.reshape(-1, moved.shape[-1]), np.moveaxis(support, axis, -1).reshape(-1, moved.shape[-1])
        w1, w2 = (np.moveaxis(h.reshape(moved.shape), -1, axis) for h in _split_rows(rows, mask))
    w1, w2 = w1.astype(w_in.dtype), w2.astype(w_in.dtype)
    if is_tensor:
        return paddle.to_tensor(w1, place=weight.place), paddle.to_tensor(w2, place=weight.place)
    return w1, w2


# --------------------------------------------------------------------------------------------
# Split layers
# --------------------------------------------------------------------------------------------


def _quantize(quantizer: Optional[Quantizer], w: paddle.Tensor) -> paddle.Tensor:
    return w if quantizer is None else quantizer(w)


class SplitQuantLinear(nn.Layer):
    """Two binary linears sharing their input, summed: y = Q_a(x) @ (Q_w(W1) + Q_w(W2)) + b.

    Equal to ``Q_a(x) @ Q_w(W1) + b/2 + Q_a(x) @ Q_w(W2) + b/2`` (BinaryBERT's split linear) and to
    one binary linear of doubled input width over ``[x, x]``; computed as a single product.
    ``weight1`` / ``weight2`` are ``[in, out]`` latent FP weights, each quantized on its own
    (its own bwn scale), ``bias`` is FP and counted once.
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
        self.weight1 = self.create_parameter([in_features, out_features])
        self.weight2 = self.create_parameter([in_features, out_features])
        self.bias = self.create_parameter([out_features], is_bias=True) if bias else None
        self.weight_quantizer = weight_quantizer
        self.input_quantizer = input_quantizer

    @classmethod
    def like(cls, layer: QuantLinear, weight_quantizer: Optional[Quantizer] = None) -> SplitQuantLinear:
        """An empty split layer with ``layer``'s shape, input quantizer and bias (for loading)."""
        wq = weight_quantizer if weight_quantizer is not None else layer.weight_quantizer
        new = cls(layer.in_features, layer.out_features, wq, layer.input_quantizer, bias=layer.bias is not None)
        if layer.bias is not None:
            new.bias.set_value(layer.bias.detach().clone())
        return new

    @classmethod
    def from_ternary(cls, layer: QuantLinear, weight_quantizer: Optional[Quantizer] = None) -> SplitQuantLinear:
        """Split a ternary ``QuantLinear`` by :func:`tws_split` (over the twn quantizer's axis)."""
        new = cls.like(layer, weight_quantizer if weight_quantizer is not None else get_quantizer("bwn", axis=None))
        w1, w2 = tws_split(layer.weight.detach(), axis=getattr(layer.weight_quantizer, "axis", None))
        new.weight1.set_value(w1)
        new.weight2.set_value(w2)
        return new

    @property
    def weight(self) -> paddle.Tensor:
        """W1 + W2, the latent weight of the unsplit layer (read-only; PaddleNLP reads
        ``pooler.dense.weight.dtype``)."""
        return self.weight1 + self.weight2

    def quantized_halves(self) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """(Q_w(W1), Q_w(W2)), the two binary matrices."""
        return _quantize(self.weight_quantizer, self.weight1), _quantize(self.weight_quantizer, self.weight2)

    def quantized_weight(self) -> paddle.Tensor:
        """Q_w(W1) + Q_w(W2): the effective (ternary-valued after the split) weight."""
        q1, q2 = self.quantized_halves()
        return q1 + q2

    def binary_halves(self) -> List[Tuple[paddle.Tensor, Optional[paddle.Tensor]]]:
        """The two binary linears of the paper, ``[(Q_w(W1), b/2), (Q_w(W2), b/2)]`` (for export)."""
        half = None if self.bias is None else self.bias / 2.0
        return [(q, half) for q in self.quantized_halves()]

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        return F.linear(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, split=2"


class SplitQuantEmbedding(nn.Layer):
    """Row-wise split word embedding: out[t] = Q_w(E1)[ids[t]] + Q_w(E2)[ids[t]].

    The quantizer is row-wise (``bwn`` with ``axis=-1``), so quantizing the gathered rows equals
    quantizing the tables, as in :class:`~paddle_binbert.quant.QuantEmbedding`.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, weight_quantizer: Optional[Quantizer] = None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight1 = self.create_parameter([num_embeddings, embedding_dim])
        self.weight2 = self.create_parameter([num_embeddings, embedding_dim])
        self.weight_quantizer = weight_quantizer

    @classmethod
    def like(cls, layer: QuantEmbedding, weight_quantizer: Optional[Quantizer] = None) -> SplitQuantEmbedding:
        """An empty split embedding with ``layer``'s shape (for loading)."""
        wq = weight_quantizer if weight_quantizer is not None else layer.weight_quantizer
        return cls(layer.num_embeddings, layer.embedding_dim, wq)

    @classmethod
    def from_ternary(cls, layer: QuantEmbedding, weight_quantizer: Optional[Quantizer] = None) -> SplitQuantEmbedding:
        """Split a ternary ``QuantEmbedding`` row by row (:func:`tws_split` with ``axis=-1``)."""
        new = cls.like(layer, weight_quantizer if weight_quantizer is not None else get_quantizer("bwn", axis=-1))
        w1, w2 = tws_split(layer.weight.detach(), axis=getattr(layer.weight_quantizer, "axis", -1))
        new.weight1.set_value(w1)
        new.weight2.set_value(w2)
        return new

    @property
    def weight(self) -> paddle.Tensor:
        """E1 + E2, the latent table of the unsplit embedding (read-only)."""
        return self.weight1 + self.weight2

    def quantized_weight(self) -> paddle.Tensor:
        """Q_w(E1) + Q_w(E2), the whole effective table."""
        return _quantize(self.weight_quantizer, self.weight1) + _quantize(self.weight_quantizer, self.weight2)

    def forward(self, ids: paddle.Tensor) -> paddle.Tensor:
        rows1, rows2 = F.embedding(ids, self.weight1), F.embedding(ids, self.weight2)
        return _quantize(self.weight_quantizer, rows1) + _quantize(self.weight_quantizer, rows2)

    def extra_repr(self) -> str:
        return f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}, split=2"


# --------------------------------------------------------------------------------------------
# Model surgery
# --------------------------------------------------------------------------------------------


def splittable_layers(model: nn.Layer) -> List[str]:
    """Names (relative to the ``BertModel``) of the ternary layers: every ``QuantLinear`` /
    ``QuantEmbedding`` whose weight quantizer is ``twn``, in module order."""
    return [
        name
        for name, layer in get_bert(model).named_sublayers()
        if isinstance(layer, (QuantLinear, QuantEmbedding)) and isinstance(layer.weight_quantizer, TwnWeightQuantizer)
    ]


def split_layers_of(model: nn.Layer) -> List[str]:
    """The layer names recorded as split in ``model.config`` (empty for an unsplit model)."""
    info = getattr(getattr(model, "config", None), SPLIT_CONFIG_KEY, None)
    return list(info["layers"]) if info else []


def binary_config_for(config: QuantConfig) -> QuantConfig:
    """The QuantConfig after splitting: ``twn`` (2 bits) -> ``bwn`` (1 bit) for the weights and
    the embedding, everything else (activation quantizer, bits, attention, hidden_act) kept.

    ``binarybert_ternary`` gives a config equal to the ``binarybert`` preset (also by name).
    """
    if config.weight_quantizer != "twn" or config.weight_bits != 2:
        raise ValueError(
            f"ternary weight splitting needs weight_quantizer='twn' at weight_bits=2, got "
            f"{config.weight_quantizer!r} at {config.weight_bits} bits ({config.name})"
        )
    if config.embedding_quantizer not in ("twn", "none"):
        raise ValueError(
            f"embedding_quantizer must be 'twn' (split) or 'none' (kept FP), got {config.embedding_quantizer!r}"
        )
    data = config.to_dict()
    data.update(weight_quantizer="bwn", weight_bits=1)
    if config.embedding_quantizer == "twn":
        data.update(embedding_quantizer="bwn", embedding_bits=1)
    preset = QuantConfig.from_preset("binarybert").to_dict()
    same_as_preset = {k: v for k, v in data.items() if k != "name"} == {k: v for k, v in preset.items() if k != "name"}
    data["name"] = "binarybert" if same_as_preset else f"{config.name}_split"
    return QuantConfig.from_dict(data)


def split_ternary_model(model: nn.Layer, layers: Optional[Iterable[str]] = None) -> nn.Layer:
    """Turn a ternary student into the equivalent BinaryBERT student, in place (TWS, Bai et al. 2021).

    Every ternary layer named in ``layers`` (default: all of :func:`splittable_layers`) becomes a
    :class:`SplitQuantLinear` / :class:`SplitQuantEmbedding` with (W1, W2) = tws_split(W), so
    bwn(W1) + bwn(W2) = twn(W) and the layer computes exactly what it did; the other ternary
    layers keep W and switch to ``bwn`` (plain binary, adaptive splitting).  Activation
    quantizers (with their learned parameters), biases, LayerNorms, position / token-type
    embeddings and the head are kept.  ``model.config`` gets the binary QuantConfig
    (:func:`binary_config_for`) and ``SPLIT_CONFIG_KEY = {"layers": [...], "source": name}``.
    """
    config = quant_config_of(model)
    if config is None:
        raise ValueError(f"{type(model).__name__} is not quantized: quantize_model(model, 'binarybert_ternary') first")
    if split_layers_of(model):
        raise ValueError(f"{type(model).__name__} is already split")
    binary = binary_config_for(config)
    candidates = splittable_layers(model)
    chosen = list(candidates) if layers is None else list(dict.fromkeys(layers))
    unknown = sorted(set(chosen) - set(candidates))
    if unknown:
        raise ValueError(f"not ternary layers of the model: {unknown}; splittable: {candidates}")

    bert = get_bert(model)
    sublayers = dict(bert.named_sublayers())
    for name in candidates:
        layer = sublayers[name]
        bwn = get_quantizer("bwn", axis=layer.weight_quantizer.axis)
        if name in chosen:
            split_cls = SplitQuantLinear if isinstance(layer, QuantLinear) else SplitQuantEmbedding
            set_sublayer(bert, name, split_cls.from_ternary(layer, bwn))
        else:
            layer.weight_quantizer = bwn

    own_config = copy.deepcopy(model.config)
    model.config = own_config
    bert.config = own_config
    setattr(own_config, QUANT_CONFIG_KEY, binary.to_dict())
    setattr(own_config, SPLIT_CONFIG_KEY, {"layers": [n for n in candidates if n in chosen], "source": config.name})
    return model


def apply_split_layout(model: nn.Layer) -> nn.Layer:
    """Replace the layers listed under ``model.config.binbert_split`` by empty split layers (in place).

    For loading: ``quantize_model`` rebuilds a split checkpoint's architecture with plain binary
    layers; this swaps the split ones for :class:`SplitQuantLinear` / :class:`SplitQuantEmbedding`
    (same quantizers) so the state dict (``weight1`` / ``weight2``) loads strictly.  A no-op for an
    unsplit model.  ``models/build.py`` needs this after ``quantize_model`` in ``build_model``.
    """
    bert = get_bert(model)
    sublayers = dict(bert.named_sublayers())
    for name in split_layers_of(model):
        layer = sublayers.get(name)
        if isinstance(layer, (SplitQuantLinear, SplitQuantEmbedding)):
            continue
        if isinstance(layer, QuantLinear):
            set_sublayer(bert, name, SplitQuantLinear.like(layer))
        elif isinstance(layer, QuantEmbedding):
            set_sublayer(bert, name, SplitQuantEmbedding.like(layer))
        else:
            raise ValueError(f"split layer {name!r} is {type(layer).__name__}, not a quantized linear/embedding")
    return model


