"""Quantization functions as `paddle.autograd.PyLayer`s: forward = quantize, backward = the
straight-through estimator of specs/quantizers.md.

Conventions (specs/README.md):
- ``sgn(v) = +1 if v >= 0 else -1``: ties go to +1 so every value is exactly one bit
  (``paddle.sign`` gives 0 at 0 and is not used).
- Weights of ``nn.Linear`` are ``[in, out]``: "per output channel" reduces over axis 0.
- ``axis=None`` reduces over the whole tensor; an int reduces over that axis (kept as size 1).
- ``paddle.round`` rounds half to even, like ``numpy.round``; the elastic unsigned quantizer
  rounds half up instead (``floor(u + 0.5)``) so that it agrees with the packed engine's
  ``1[u >= 1/2]``.

Every backward returns ``None`` for inputs that do not require a gradient (Paddle insists).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import paddle
from paddle.autograd import PyLayer

__all__ = [
    "sgn",
    "bibert_weight",
    "bwn_weight",
    "bwn_centered_weight",
    "twn_weight",
    "uniform_weight",
    "sign_ste",
    "bool_ste",
    "elastic_signed",
    "elastic_unsigned",
    "lsq",
    "uniform_clip",
    "binary_linear",
]


def sgn(x: paddle.Tensor) -> paddle.Tensor:
    """sgn(x) = +1 where x >= 0, -1 elsewhere (ties to +1), in x's dtype."""
    return (x >= 0).astype(x.dtype) * 2.0 - 1.0


def _mean(x: paddle.Tensor, axis: Optional[int]) -> paddle.Tensor:
    if axis is None:
        return x.mean()
    return x.mean(axis=axis, keepdim=True)


def _needs_grad(*tensors: paddle.Tensor) -> list:
    return [isinstance(t, paddle.Tensor) and not t.stop_gradient for t in tensors]


def _only_needed(needs: Sequence[bool], grads: Sequence[Optional[paddle.Tensor]]):
    out = tuple(g if need else None for need, g in zip(needs, grads))
    return out[0] if len(out) == 1 else out


def _reduce_to(grad: paddle.Tensor, shape: Sequence[int]) -> paddle.Tensor:
    """Sum a gradient over the broadcast axes so that it has ``shape`` (a trailing-channel
    parameter like beta[C] or a scalar [1])."""
    if list(shape) == [1] or len(shape) == 0:
        return grad.sum().reshape(list(shape) or [1])
    axes = list(range(grad.ndim - len(shape)))
    return grad.sum(axis=axes).reshape(list(shape)) if axes else grad


# --------------------------------------------------------------------------------------------
# Weight quantizers
# --------------------------------------------------------------------------------------------


class _BiBertWeight(PyLayer):
    @staticmethod
    def forward(ctx, w, axis):
        mu = _mean(w, axis)
        alpha = _mean(w.abs(), axis)
        centered = w - mu
        ctx.save_for_backward(centered)
        return alpha * sgn(centered)

    @staticmethod
    def backward(ctx, g):
        (centered,) = ctx.saved_tensor()
        return g * (centered.abs() <= 1.0).astype(g.dtype)


def bibert_weight(w: paddle.Tensor, axis: Optional[int] = 0) -> paddle.Tensor:
    """BiBERT weight binarizer (Qin et al., 2022, "BiBERT", eq. 3; PyTorch release).

    mu_j = mean_i W[i, j]; alpha_j = mean_i |W[i, j]| (detached, un-centred);
    Wq = alpha_j * sgn(W - mu_j).  Backward: dL/dW = g * 1[|W - mu_j| <= 1].
    ``axis=0`` is per output channel of an ``[in, out]`` linear weight; ``axis=-1`` is per row
    of an embedding.
    """
    return _BiBertWeight.apply(w, axis)


class _ScaledSignWeight(PyLayer):
    @staticmethod
    def forward(ctx, w, axis, centered):
        alpha = _mean(w.abs(), axis)
        shifted = w - _mean(w, axis) if centered else w
        return alpha * sgn(shifted)

    @staticmethod
    def backward(ctx, g):
        return g


def bwn_weight(w: paddle.Tensor, axis: Optional[int] = None) -> paddle.Tensor:
    """Binary Weight Network quantizer (Rastegari et al., 2016, XNOR-Net; BinaryBERT baseline).

    alpha = mean(|W|) (whole matrix, or per ``axis``); Wq = alpha * sgn(W).
    Backward: identity, dL/dW = g.
    """
    return _ScaledSignWeight.apply(w, axis, False)


def bwn_centered_weight(w: paddle.Tensor, axis: Optional[int] = None) -> paddle.Tensor:
    """Centred BWN (Liu et al., 2022, "BiT", weight binarization).

    mu = mean(W), alpha = mean(|W|); Wq = alpha * sgn(W - mu).  Backward: identity.
    """
    return _ScaledSignWeight.apply(w, axis, True)


class _TwnWeight(PyLayer):
    @staticmethod
    def forward(ctx, w, axis):
        absw = w.abs()
        delta = 0.7 * _mean(absw, axis)
        keep = (absw > delta).astype(w.dtype)
        count = keep.sum() if axis is None else keep.sum(axis=axis, keepdim=True)
        total = (absw * keep).sum() if axis is None else (absw * keep).sum(axis=axis, keepdim=True)
        alpha = total / paddle.clip(count, min=1.0)
        return alpha * sgn(w) * keep

    @staticmethod
    def backward(ctx, g):
        return g


def twn_weight(w: paddle.Tensor, axis: Optional[int] = None) -> paddle.Tensor:
    """Ternary Weight Network quantizer (Li et al., 2016, TWN; BinaryBERT ternary stage).

    Delta = 0.7 * mean(|W|); alpha = mean(|W| over |W| > Delta) (0 when empty);
    Wq = alpha * sgn(W) * 1[|W| > Delta].  Backward: identity.
    """
    return _TwnWeight.apply(w, axis)


class _UniformWeight(PyLayer):
    @staticmethod
    def forward(ctx, w, bits, axis):
        qmax = 2.0 ** (bits - 1) - 1.0
        absmax = w.abs().max() if axis is None else w.abs().max(axis=axis, keepdim=True)
        scale = paddle.clip(absmax, min=1e-12) / qmax
        return paddle.round(w / scale) * scale

    @staticmethod
    def backward(ctx, g):
        return g


def uniform_weight(w: paddle.Tensor, bits: int, axis: Optional[int] = None) -> paddle.Tensor:
    """Symmetric k-bit uniform weight quantizer (the 2..8-bit baselines of BinaryBERT / Q8BERT).

    scale = max(|W|) / (2^(k-1) - 1); Wq = round(W / scale) * scale.  Backward: identity.
    """
    return _UniformWeight.apply(w, bits, axis)


# --------------------------------------------------------------------------------------------
# Activation quantizers
# --------------------------------------------------------------------------------------------


class _SignSTE(PyLayer):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sgn(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensor()
        return g * (x.abs() <= 1.0).astype(g.dtype)


def sign_ste(x: paddle.Tensor) -> paddle.Tensor:
    """Sign activation with the clipped straight-through estimator (Courbariaux et al., 2016,
    BinaryNet; BiBERT).  xq = sgn(x);  dL/dx = g * 1[|x| <= 1]."""
    return _SignSTE.apply(x)


class _BoolSTE(PyLayer):
    @staticmethod
    def forward(ctx, s):
        ctx.save_for_backward(s)
        return (s > 0).astype(s.dtype)

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved_tensor()
        return g * (s.abs() <= 1.0).astype(g.dtype)


def bool_ste(s: paddle.Tensor) -> paddle.Tensor:
    """BiBERT's bool attention function (Qin et al., 2022, "Bi-Attention", eq. 8).

    A = 1 if S > 0 else 0 (a tie S == 0 gives 0, as in the PyTorch release);
    dL/dS = g * 1[|S| <= 1].
    """
    return _BoolSTE.apply(s)


class _ElasticSigned(PyLayer):
    @staticmethod
    def forward(ctx, x, alpha, beta):
        ctx.needs = _needs_grad(x, alpha, beta)
        ctx.beta_shape = beta.shape
        shifted = x - beta
        ctx.save_for_backward(shifted, alpha)
        return alpha * sgn(shifted)

    @staticmethod
    def backward(ctx, g):
        shifted, alpha = ctx.saved_tensor()
        inside = ((shifted / alpha).abs() <= 1.0).astype(g.dtype)
        gx = g * inside
        galpha = (g * sgn(shifted)).sum().reshape([1]) / math.sqrt(g.size)
        gbeta = -_reduce_to(gx, ctx.beta_shape)
        return _only_needed(ctx.needs, (gx, galpha, gbeta))


def elastic_signed(x: paddle.Tensor, alpha: paddle.Tensor, beta: paddle.Tensor) -> paddle.Tensor:
    """BiT elastic binary activation, signed set (Liu et al., 2022, "BiT", eq. 6).

    xq = alpha * sgn(x - beta).  Backward, with N = numel(x):
    dL/dx = g * 1[|(x - beta) / alpha| <= 1];  dL/dalpha = sum(g * sgn(x - beta)) / sqrt(N);
    dL/dbeta = -dL/dx summed to beta's shape (one value per trailing channel).
    """
    return _ElasticSigned.apply(x, alpha, beta)


class _ElasticUnsigned(PyLayer):
    @staticmethod
    def forward(ctx, x, alpha, beta):
        ctx.needs = _needs_grad(x, alpha, beta)
        ctx.beta_shape = beta.shape
        u = (x - beta) / alpha
        level = paddle.floor(paddle.clip(u, 0.0, 1.0) + 0.5)
        ctx.save_for_backward(u, level)
        return alpha * level

    @staticmethod
    def backward(ctx, g):
        u, level = ctx.saved_tensor()
        inside = ((u >= 0.0) & (u <= 1.0)).astype(g.dtype)
        gx = g * inside
        dq_dalpha = paddle.where(u < 0.0, paddle.zeros_like(u), paddle.where(u > 1.0, paddle.ones_like(u), level - u))
        galpha = (g * dq_dalpha).sum().reshape([1]) / math.sqrt(g.size)
        gbeta = -_reduce_to(gx, ctx.beta_shape)
        return _only_needed(ctx.needs, (gx, galpha, gbeta))


def elastic_unsigned(x: paddle.Tensor, alpha: paddle.Tensor, beta: paddle.Tensor) -> paddle.Tensor:
    """BiT elastic binary activation, unsigned set {0, alpha} (Liu et al., 2022, "BiT", eq. 6).

    u = (x - beta) / alpha;  xq = alpha * round(clip(u, 0, 1)) with round half up.
    dL/dx = g * 1[0 <= u <= 1];
    dL/dalpha = sum(g * (0 if u < 0; 1 if u > 1; round(u) - u otherwise)) / sqrt(N);
    dL/dbeta = -dL/dx summed to beta's shape.
    """
    return _ElasticUnsigned.apply(x, alpha, beta)


class _LSQ(PyLayer):
    @staticmethod
    def forward(ctx, x, step, qn, qp):
        ctx.needs = _needs_grad(x, step)
        ctx.qn, ctx.qp = qn, qp
        v = x / step
        level = paddle.round(paddle.clip(v, qn, qp))
        ctx.save_for_backward(v, level)
        return level * step

    @staticmethod
    def backward(ctx, g):
        v, level = ctx.saved_tensor()
        qn, qp = ctx.qn, ctx.qp
        inside = ((v >= qn) & (v <= qp)).astype(g.dtype)
        gx = g * inside
        dq_ds = paddle.where(v < qn, paddle.full_like(v, qn), paddle.where(v > qp, paddle.full_like(v, qp), level - v))
        gs = (g * dq_ds).sum().reshape([1]) / math.sqrt(g.size * qp)
        return _only_needed(ctx.needs, (gx, gs))


def lsq(x: paddle.Tensor, step: paddle.Tensor, bits: int, signed: bool) -> paddle.Tensor:
    """Learned Step Size Quantization (Esser et al., 2020, LSQ; BinaryBERT A4/A2).

    (Qn, Qp) = (-2^(k-1), 2^(k-1) - 1) signed or (0, 2^k - 1) unsigned;
    q = round(clip(x / s, Qn, Qp)) * s (round half to even).
    dL/dx = g * 1[Qn <= x/s <= Qp];
    dL/ds = sum(g * (Qn if x/s < Qn; Qp if x/s > Qp; round(x/s) - x/s otherwise)) / sqrt(N * Qp).
    """
    qn, qp = lsq_range(bits, signed)
    return _LSQ.apply(x, step, qn, qp)


def lsq_range(bits: int, signed: bool) -> tuple:
    """(Qn, Qp) integer range of a k-bit LSQ quantizer."""
    if signed:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1.0
    return 0.0, 2.0**bits - 1.0


class _UniformClip(PyLayer):
    @staticmethod
    def forward(ctx, x, clip_val, bits):
        ctx.needs = _needs_grad(x, clip_val)
        ctx.save_for_backward(x, clip_val)
        clipped = paddle.minimum(paddle.maximum(x, -clip_val), clip_val)
        qmax = 2.0 ** (bits - 1) - 1.0
        scale = paddle.clip(clipped.abs().max(), min=1e-12) / qmax
        return paddle.round(clipped / scale) * scale

    @staticmethod
    def backward(ctx, g):
        x, clip_val = ctx.saved_tensor()
        inside = (x.abs() <= clip_val).astype(g.dtype)
        gx = g * inside
        gc = (g * sgn(x) * (1.0 - inside)).sum().reshape([1])
        return _only_needed(ctx.needs, (gx, gc))


def uniform_clip(x: paddle.Tensor, clip_val: paddle.Tensor, bits: int) -> paddle.Tensor:
    """Symmetric k-bit quantizer with a learnable clip (PACT, Choi et al., 2018; BinaryBERT A8).

    xc = clip(x, -c, c); scale = max(|xc|) / (2^(k-1) - 1); q = round(xc / scale) * scale.
    dL/dx = g * 1[|x| <= c];  dL/dc = sum(g * sgn(x) * 1[|x| > c]).
    """
    return _UniformClip.apply(x, clip_val, bits)


# --------------------------------------------------------------------------------------------
# Binary linear: integer product first, scales after (what the packed engine computes)
# --------------------------------------------------------------------------------------------


class _BinaryLinear(PyLayer):
    @staticmethod
    def forward(ctx, xq, wq, bias, x_scale, unsigned):
        ctx.needs = _needs_grad(xq, wq, bias)
        ctx.has_bias, ctx.has_scale = bias is not None, x_scale is not None
        ctx.save_for_backward(xq, wq)
        levels = (xq != 0).astype(xq.dtype) if unsigned else sgn(xq)
        scale = wq.abs().max(axis=0)  # alpha_w[out]: |wq[i, j]| = alpha_j for every i
        if x_scale is not None:
            scale = (x_scale if unsigned else x_scale.abs()) * scale
        y = paddle.matmul(levels, sgn(wq)) * scale
        return y if bias is None else y + bias

    @staticmethod
    def backward(ctx, g):
        # F.linear(xq, wq, bias)'s backward, with the same products (checked bit for bit by
        # tests/quant/test_binary_linear.py): the straight-through estimators behind xq and wq
        # receive exactly the gradients they received from the float formulation.
        xq, wq = ctx.saved_tensor()
        need_x, need_w = ctx.needs[0], ctx.needs[1]
        n_in, n_out = wq.shape
        g2 = g.reshape([-1, n_out])
        gx = paddle.matmul(g, wq, transpose_y=True) if need_x else None
        gw = paddle.matmul(xq.reshape([-1, n_in]), g2, transpose_x=True) if need_w else None
        grads = [gx, gw]  # one entry per tensor input: xq, wq[, bias][, x_scale (never a gradient)]
        if ctx.has_bias:
            grads.append(g2.sum(axis=0) if ctx.needs[2] else None)
        if ctx.has_scale:
            grads.append(None)
        return tuple(grads)


def binary_linear(
    xq: paddle.Tensor,
    wq: paddle.Tensor,
    bias: Optional[paddle.Tensor] = None,
    x_scale: Optional[paddle.Tensor] = None,
    unsigned: bool = False,
) -> paddle.Tensor:
    """A linear of binary operands, integer product first (the packed engine's order).

    ``wq`` ``[in, out]`` is a binary weight ``wq[i, j] = alpha_j * s_ij``, ``s_ij`` in {-1, +1} (one
    scale per output column, or one for the whole matrix); ``xq = a * t`` is a binary activation with
    ``t`` in {-1, +1} (``unsigned=False``) or {0, 1} (``unsigned=True``) and scalar scale ``a``
    (``x_scale``, a ``[1]`` tensor; ``None`` for a = 1: sign / bool activations).  Then

        y = (t @ s) * (|a| * alpha) + b      (signed; t = sgn(xq), alpha_j = max_i |wq[i, j]|)
        y = (t @ s) * (a * alpha) + b        (unsigned; t = 1[xq != 0])

    evaluated as ``fl(fl(dot * fl(a * alpha_j)) + b_j)``, which is the engine's
    ``alpha_j * dot + b_j`` with its folded ``alpha_j = a * alpha_w_j``.  ``dot = t @ s`` holds
    integers of magnitude <= in, exact in float32 (in < 2^24), so a pre-activation with
    ``dot = 0`` and ``b = 0`` is exactly 0 (``sgn(0) = +1``) as in the engine's popcount, where
    ``xq @ wq`` would accumulate ``+-alpha_j`` in float and round to either sign.

    Mathematically ``y = xq @ wq + b``.  Backward: that of ``F.linear(xq, wq, bias)``, bit for bit
    (dL/dxq = g @ wq^T, dL/dwq = xq^T g over all leading axes, dL/db = sum of g over them); the
    scales are read from ``xq``/``wq``/``x_scale`` only for the forward value, so the gradients
    reach ``a`` and the latent weights through the quantizers that made ``xq`` and ``wq``.
    """
    if x_scale is not None:
        x_scale = x_scale.detach()
    return _BinaryLinear.apply(xq, wq, bias, x_scale, bool(unsigned))
