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

While a static program is being built (``paddle.jit.to_static``, e.g. the static export), the
functions run their PyLayer's forward expression directly (:func:`_run`): PaddleNLP's encoder is
``not_to_static``, so the PyLayers inside it would be called as plain Python in static mode, which
Paddle refuses. Inference needs no backward, and the values are the same operations. The functions
are ``not_to_static`` themselves, so that they run the same way when called from converted code.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F
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
    "binary_matmul",
    "engine_exp",
    "engine_softmax",
    "engine_layer_norm",
    "with_value",
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


class _ForwardContext:
    """The ``ctx`` handed to a PyLayer ``forward`` outside autograd: stores attributes, saves nothing."""

    def save_for_backward(self, *tensors: Any) -> None:
        """Nothing is needed: there is no backward pass."""

    def saved_tensor(self) -> Tuple[Any, ...]:
        raise RuntimeError("a forward-only quantizer has no saved tensors (no backward pass in a static program)")


@paddle.jit.not_to_static
def _run(layer_cls: type, *args: Any) -> Any:
    """``layer_cls.apply(*args)`` in dygraph; while a static program is built, the PyLayer's own forward
    expression without autograd (same operations, so the same values)."""
    if paddle.in_dynamic_mode():
        return layer_cls.apply(*args)
    return layer_cls.forward(_ForwardContext(), *args)


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


@paddle.jit.not_to_static
def bibert_weight(w: paddle.Tensor, axis: Optional[int] = 0) -> paddle.Tensor:
    """BiBERT weight binarizer (Qin et al., 2022, "BiBERT", eq. 3; PyTorch release).

    mu_j = mean_i W[i, j]; alpha_j = mean_i |W[i, j]| (detached, un-centred);
    Wq = alpha_j * sgn(W - mu_j).  Backward: dL/dW = g * 1[|W - mu_j| <= 1].
    ``axis=0`` is per output channel of an ``[in, out]`` linear weight; ``axis=-1`` is per row
    of an embedding.
    """
    return _run(_BiBertWeight, w, axis)


class _ScaledSignWeight(PyLayer):
    @staticmethod
    def forward(ctx, w, axis, centered):
        alpha = _mean(w.abs(), axis)
        shifted = w - _mean(w, axis) if centered else w
        return alpha * sgn(shifted)

    @staticmethod
    def backward(ctx, g):
        return g


@paddle.jit.not_to_static
def bwn_weight(w: paddle.Tensor, axis: Optional[int] = None) -> paddle.Tensor:
    """Binary Weight Network quantizer (Rastegari et al., 2016, XNOR-Net; BinaryBERT baseline).

    alpha = mean(|W|) (whole matrix, or per ``axis``); Wq = alpha * sgn(W).
    Backward: identity, dL/dW = g.
    """
    return _run(_ScaledSignWeight, w, axis, False)


@paddle.jit.not_to_static
def bwn_centered_weight(w: paddle.Tensor, axis: Optional[int] = None) -> paddle.Tensor:
    """Centred BWN (Liu et al., 2022, "BiT", weight binarization).

    mu = mean(W), alpha = mean(|W|); Wq = alpha * sgn(W - mu).  Backward: identity.
    """
    return _run(_ScaledSignWeight, w, axis, True)


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


@paddle.jit.not_to_static
def twn_weight(w: paddle.Tensor, axis: Optional[int] = None) -> paddle.Tensor:
    """Ternary Weight Network quantizer (Li et al., 2016, TWN; BinaryBERT ternary stage).

    Delta = 0.7 * mean(|W|); alpha = mean(|W| over |W| > Delta) (0 when empty);
    Wq = alpha * sgn(W) * 1[|W| > Delta].  Backward: identity.
    """
    return _run(_TwnWeight, w, axis)


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


@paddle.jit.not_to_static
def uniform_weight(w: paddle.Tensor, bits: int, axis: Optional[int] = None) -> paddle.Tensor:
    """Symmetric k-bit uniform weight quantizer (the 2..8-bit baselines of BinaryBERT / Q8BERT).

    scale = max(|W|) / (2^(k-1) - 1); Wq = round(W / scale) * scale.  Backward: identity.
    """
    return _run(_UniformWeight, w, bits, axis)


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


@paddle.jit.not_to_static
def sign_ste(x: paddle.Tensor) -> paddle.Tensor:
    """Sign activation with the clipped straight-through estimator (Courbariaux et al., 2016,
    BinaryNet; BiBERT).  xq = sgn(x);  dL/dx = g * 1[|x| <= 1]."""
    return _run(_SignSTE, x)


class _BoolSTE(PyLayer):
    @staticmethod
    def forward(ctx, s):
        ctx.save_for_backward(s)
        return (s > 0).astype(s.dtype)

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved_tensor()
        return g * (s.abs() <= 1.0).astype(g.dtype)


@paddle.jit.not_to_static
def bool_ste(s: paddle.Tensor) -> paddle.Tensor:
    """BiBERT's bool attention function (Qin et al., 2022, "Bi-Attention", eq. 8).

    A = 1 if S > 0 else 0 (a tie S == 0 gives 0, as in the PyTorch release);
    dL/dS = g * 1[|S| <= 1].
    """
    return _run(_BoolSTE, s)


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


@paddle.jit.not_to_static
def elastic_signed(x: paddle.Tensor, alpha: paddle.Tensor, beta: paddle.Tensor) -> paddle.Tensor:
    """BiT elastic binary activation, signed set (Liu et al., 2022, "BiT", eq. 6).

    xq = alpha * sgn(x - beta).  Backward, with N = numel(x):
    dL/dx = g * 1[|(x - beta) / alpha| <= 1];  dL/dalpha = sum(g * sgn(x - beta)) / sqrt(N);
    dL/dbeta = -dL/dx summed to beta's shape (one value per trailing channel).
    """
    return _run(_ElasticSigned, x, alpha, beta)


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


@paddle.jit.not_to_static
def elastic_unsigned(x: paddle.Tensor, alpha: paddle.Tensor, beta: paddle.Tensor) -> paddle.Tensor:
    """BiT elastic binary activation, unsigned set {0, alpha} (Liu et al., 2022, "BiT", eq. 6).

    u = (x - beta) / alpha;  xq = alpha * round(clip(u, 0, 1)) with round half up.
    dL/dx = g * 1[0 <= u <= 1];
    dL/dalpha = sum(g * (0 if u < 0; 1 if u > 1; round(u) - u otherwise)) / sqrt(N);
    dL/dbeta = -dL/dx summed to beta's shape.
    """
    return _run(_ElasticUnsigned, x, alpha, beta)


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


@paddle.jit.not_to_static
def lsq(x: paddle.Tensor, step: paddle.Tensor, bits: int, signed: bool) -> paddle.Tensor:
    """Learned Step Size Quantization (Esser et al., 2020, LSQ; BinaryBERT A4/A2).

    (Qn, Qp) = (-2^(k-1), 2^(k-1) - 1) signed or (0, 2^k - 1) unsigned;
    q = round(clip(x / s, Qn, Qp)) * s (round half to even).
    dL/dx = g * 1[Qn <= x/s <= Qp];
    dL/ds = sum(g * (Qn if x/s < Qn; Qp if x/s > Qp; round(x/s) - x/s otherwise)) / sqrt(N * Qp).
    """
    qn, qp = lsq_range(bits, signed)
    return _run(_LSQ, x, step, qn, qp)


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


@paddle.jit.not_to_static
def uniform_clip(x: paddle.Tensor, clip_val: paddle.Tensor, bits: int) -> paddle.Tensor:
    """Symmetric k-bit quantizer with a learnable clip (PACT, Choi et al., 2018; BinaryBERT A8).

    xc = clip(x, -c, c); scale = max(|xc|) / (2^(k-1) - 1); q = round(xc / scale) * scale.
    dL/dx = g * 1[|x| <= c];  dL/dc = sum(g * sgn(x) * 1[|x| > c]).
    """
    return _run(_UniformClip, x, clip_val, bits)


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


@paddle.jit.not_to_static
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
    return _run(_BinaryLinear, xq, wq, bias, x_scale, bool(unsigned))


# --------------------------------------------------------------------------------------------
# Binary x binary matmul of attention: integer product first, scales after
# --------------------------------------------------------------------------------------------


class _BinaryMatmul(PyLayer):
    @staticmethod
    def forward(ctx, xq, yq, x_scale, y_scale, pre_scale, transpose_y, x_unsigned):
        ctx.needs = _needs_grad(xq, yq)
        ctx.pre_scale, ctx.transpose_y = pre_scale, transpose_y
        ctx.save_for_backward(xq, yq)
        tx = (xq != 0).astype(xq.dtype) if x_unsigned else sgn(xq)
        scale = x_scale if x_unsigned else x_scale.abs()
        if pre_scale is not None:
            scale = scale * pre_scale
        scale = scale * y_scale.abs()
        return paddle.matmul(tx, sgn(yq), transpose_y=transpose_y) * scale

    @staticmethod
    def backward(ctx, g):
        # the backward of paddle.matmul(xq * c, yq, transpose_y) (phi's matmul_grad, then the scale's),
        # checked bit for bit by tests/quant/test_engine_expressions.py
        xq, yq = ctx.saved_tensor()
        c = ctx.pre_scale
        xs = xq if c is None else xq * c
        gx = gy = None
        if ctx.transpose_y:  # out = xs @ yq^T: dxs = g @ yq, dyq = g^T @ xs
            if ctx.needs[0]:
                gx = paddle.matmul(g, yq)
            if ctx.needs[1]:
                gy = paddle.matmul(g, xs, transpose_x=True)
        else:  # out = xs @ yq: dxs = g @ yq^T, dyq = xs^T @ g
            if ctx.needs[0]:
                gx = paddle.matmul(g, yq, transpose_y=True)
            if ctx.needs[1]:
                gy = paddle.matmul(xs, g, transpose_x=True)
        if gx is not None and c is not None:
            gx = gx * c
        return gx, gy, None, None


@paddle.jit.not_to_static
def binary_matmul(
    xq: paddle.Tensor,
    yq: paddle.Tensor,
    x_scale: paddle.Tensor,
    y_scale: paddle.Tensor,
    pre_scale: Optional[float] = None,
    transpose_y: bool = False,
    x_unsigned: bool = False,
) -> paddle.Tensor:
    """A batched matmul of two binary activations, integer product first (the packed engine's order).

    ``xq = a * t_x`` with ``t_x`` in {-1, +1} (``x_unsigned=False``, ``t_x = sgn(xq)``) or {0, 1}
    (``x_unsigned=True``, ``t_x = 1[xq != 0]``) and ``yq = b * t_y``, ``t_y = sgn(yq)`` in {-1, +1}; ``a``
    and ``b`` are ``[1]`` scales (``x_scale``, ``y_scale``: elastic alphas), ``c`` an optional Python
    float (``pre_scale``). Then

        out = (t_x @ t_y) * fl(fl(a' * c) * |b|)        (t_y^T with ``transpose_y``),

    with ``a' = |a|`` (signed) or ``a`` (unsigned): the engine's ``fl(dot * cqk)`` for BiT's
    attention scores (``a = alpha_q``, ``c = 1/sqrt(d)``, ``b = alpha_k``: ``cqk = fl(fl(alpha_q / sqrt d)
    * alpha_k)``) and ``fl(dot * cpv)`` for its context (``a = alpha_p`` unsigned, ``b = alpha_v``, no
    ``c``: ``cpv = fl(alpha_p * alpha_v)``). The integer dot products (magnitude <= the contracted
    length) are exact in float32, whereas ``(xq * c) @ yq`` accumulates ``+-a c b`` in float and rounds
    differently (a dot of 0 may even come out as a tiny number of either sign).

    Mathematically ``out = (xq * c) @ yq``. Backward: that of ``paddle.matmul(xq * c, yq,
    transpose_y=transpose_y)``, bit for bit (dL/dxq = c * (g @ yq[^T]), dL/dyq = g^T @ (xq * c) or
    (xq * c)^T @ g); the scales are read for the forward value only (detached), so the gradients reach
    the alphas through the quantizers that made ``xq`` and ``yq``.
    """
    return _run(
        _BinaryMatmul, xq, yq, x_scale.detach(), y_scale.detach(), pre_scale, bool(transpose_y), bool(x_unsigned)
    )


# --------------------------------------------------------------------------------------------
# The engine's float islands in front of a quantizer: softmax (BiT) and LayerNorm, to the bit
# --------------------------------------------------------------------------------------------

# exp512 of paddle_binbert/engine/csrc/binbert_kernels.cc: float32 constants as the C++ literals round
_EXP_LO, _EXP_HI = -110.0, 88.72283935546875
_LOG2E = 1.44269504088896341
_LN2_HI, _LN2_LO = 0.693359375, -2.12194440e-4
#: Horner coefficients of exp512 as float32 values: 1.f / 5040.f, ..., 1.f / 6.f, 0.5, 1, 1
_EXP_POLY = tuple(float(np.float32(1.0) / np.float32(k)) for k in (5040, 720, 120, 24, 6, 2, 1, 1))
_POW2_MIN = -160
_POW2 = np.ldexp(1.0, np.arange(_POW2_MIN, 130)).astype(np.float64)


def _f32(v: float) -> float:
    """v rounded to float32 (as a C++ ``float`` literal or ``1.f / k`` is)."""
    return float(np.float32(v))


def _correctly_rounded(fn, *args: paddle.Tensor) -> paddle.Tensor:
    """fl32(fn(*args)) for a division or square root of float32 tensors, correctly rounded as the
    engine's SSE/AVX instructions are: evaluated in float64 (itself correctly rounded) and rounded to
    float32; for these operations the two roundings give the single one (53 >= 2 * 24 + 2 bits).
    (Paddle's float32 ``sqrt`` on CPU is not correctly rounded: it differs in about a third of the
    variances of a LayerNorm.)"""
    return fn(*(a.astype("float64") for a in args)).astype("float32")


def _fma32(a: paddle.Tensor, b, c) -> paddle.Tensor:
    """fl32(a * b + c) for float32 ``a``, ``b``, ``c`` (tensors or floats) with one rounding, like
    ``_mm512_fmadd_ps``: a * b is exact in float64 (48 significant bits); the float64 sum is rounded
    to float32 (a second rounding can matter only if the float64 sum is inexact and lands on a float32
    tie, which the operands of exp's polynomial practically never produce)."""
    a64 = a.astype("float64")
    prod = a64 * (b.astype("float64") if isinstance(b, paddle.Tensor) else b)
    return (prod + (c.astype("float64") if isinstance(c, paddle.Tensor) else c)).astype("float32")


def engine_exp(x: paddle.Tensor) -> paddle.Tensor:
    """exp(x) in float32 exactly as the engine's AVX-512 softmax computes it (``exp512``).

    x <- min(max(x, -110), 88.7228...);  n = rint(fl(x * log2 e)) (half to even);
    r = fl(x - n * ln2_hi) (n * ln2_hi = n * 0.693359375 is exact);  r = fma(n, -ln2_lo, r);
    p = Taylor polynomial of e^r to degree 7 by Horner's rule in fused multiply-adds,
    p = fma(p, r, c_k) with c = 1/5040, 1/720, 1/120, 1/24, 1/6, 1/2, 1, 1;
    exp(x) = fl32(p * 2^n) (one rounding, like VSCALEFPS; underflows to 0 below about -103).
    Relative error to the true exponential below 2e-7; no gradient (used inside :func:`engine_softmax`).
    """
    x = paddle.clip(x, _EXP_LO, _EXP_HI)
    n = paddle.round(x * _f32(_LOG2E))  # paddle.round: half to even, as _MM_FROUND_TO_NEAREST_INT
    r = x - n * _LN2_HI
    r = _fma32(n, -_f32(_LN2_LO), r).astype("float64")  # fnmadd(n, ln2_lo, r) = r - n * ln2_lo (ln2_lo < 0)
    # Horner in float64 holding float32 values: p * r is exact, + c and the float32 rounding = the fma
    p = _EXP_POLY[0]
    for c in _EXP_POLY[1:]:
        p = (r * p + c).astype("float32").astype("float64")
    # 2^n from a table of 2^k, k = -160 .. 129 (n is in [-159, 128] after the clamp)
    shape = list(n.shape) if all(isinstance(k, int) and k >= 0 for k in n.shape) else paddle.shape(n)
    two_n = paddle.gather(paddle.to_tensor(_POW2), (n - _POW2_MIN).astype("int64").flatten()).reshape(shape)
    return (p * two_n).astype("float32")


def _engine_softmax_value(s: paddle.Tensor) -> paddle.Tensor:
    """The forward of :func:`engine_softmax` (no autograd)."""
    mx = s.max(axis=-1, keepdim=True)
    e = engine_exp(s - mx)
    # 16 float32 lanes accumulate e[16 c + r] over c in order (key positions past the end add 0)
    n = e.shape[-1]
    if isinstance(n, int) and n >= 0:
        pad = (-n) % 16
        padded = paddle.concat([e, paddle.zeros(list(e.shape[:-1]) + [pad], e.dtype)], axis=-1) if pad else e
    else:  # symbolic length (paddle.jit.to_static): pad 15 zeros, keep a multiple of 16
        length = paddle.shape(e)[-1]
        padded = paddle.concat([e, paddle.zeros_like(e[..., :1]).tile([1] * (e.ndim - 1) + [15])], axis=-1)
        padded = padded[..., : ((length + 15) // 16) * 16]
    lanes = paddle.cumsum(padded.reshape([0] * (e.ndim - 1) + [-1, 16]), axis=-2)[..., -1, :]
    # _mm512_reduce_add_ps (GCC): halves, quarters, then (l0 + l2) + (l1 + l3)
    t8 = lanes[..., 8:] + lanes[..., :8]
    t4 = t8[..., 4:] + t8[..., :4]
    total = (t4[..., 0:1] + t4[..., 2:3]) + (t4[..., 1:2] + t4[..., 3:4])
    return _correctly_rounded(lambda a, b: a / b, e, total)


class _EngineSoftmax(PyLayer):
    @staticmethod
    def forward(ctx, s):
        ctx.save_for_backward(s)
        return _engine_softmax_value(s)

    @staticmethod
    def backward(ctx, g):
        # F.softmax's own backward, from F.softmax's output: the gradients of the float formulation
        (s,) = ctx.saved_tensor()
        return paddle._C_ops.softmax_grad(F.softmax(s), g, -1)


@paddle.jit.not_to_static
def engine_softmax(s: paddle.Tensor) -> paddle.Tensor:
    """Softmax over the last axis as the packed engine's AVX-512 BiT attention computes it.

    m = max_j s_j;  e_j = engine_exp(s_j - m) (:func:`engine_exp`);  the sum Z accumulates e_j in 16
    float32 lanes (lane r: e_r + e_{16+r} + e_{32+r} + ..., in that order), then adds the lanes as
    ``_mm512_reduce_add_ps`` does: h_i = l_{8+i} + l_i, q_i = h_{4+i} + h_i, Z = (q_0 + q_2) + (q_1 + q_3);
    P_j = e_j / Z.  These P feed BiT's probability quantizer 1[(P - beta) / alpha >= 1/2], so only
    the engine's own float expression gives its decisions at every threshold (``F.softmax``, another
    exp and another summation order, differs in the last bit of most P). The engine's portable path
    (CPUs without AVX-512) uses ``std::exp`` and a sequential sum, equal to this to about 1e-7.

    Backward: exactly ``F.softmax``'s (``softmax_grad`` of ``F.softmax(s)`` and the incoming gradient).
    Float32 input only (anything else falls back to ``F.softmax``).
    """
    if s.dtype != paddle.float32:
        return F.softmax(s)
    return _run(_EngineSoftmax, s)


def _engine_layer_norm_value(x, weight, bias, epsilon: float) -> paddle.Tensor:
    """The forward of :func:`engine_layer_norm` (no autograd)."""
    h = x.shape[-1]
    mean = (x.astype("float64").sum(axis=-1, keepdim=True) / float(h)).astype("float32")
    centered = x - mean
    c64 = centered.astype("float64")
    var = ((c64 * c64).sum(axis=-1, keepdim=True) / float(h)).astype("float32")
    root = _correctly_rounded(paddle.sqrt, var + _f32(epsilon))
    inv = _correctly_rounded(lambda v: 1.0 / v, root)
    return centered * inv * weight + bias


def with_value(reference: paddle.Tensor, value: paddle.Tensor) -> paddle.Tensor:
    """A float32 tensor equal to ``value`` whose gradient flows to ``reference`` unchanged.

    out = fl32(f64(reference) + (f64(value) - f64(reference)).detach()). When the float64 difference is
    exact (two float32 numbers whose exponents differ by at most 29, e.g. two roundings of the same
    expression, a few units in the last place apart) the float64 sum is exactly ``value`` and so is
    its float32 rounding. Backward: the casts and the addition pass dL/dout to ``reference`` unchanged
    (float32 -> float64 -> float32 is exact), so ``reference``'s own backward gives its gradients bit
    for bit. For an expression that must keep another expression's gradient, like a PyLayer, but
    without a PyLayer whose backward runs a nested autograd pass (Paddle crashes on ``paddle.grad``
    inside a backward that ``paddle.grad`` called).
    """
    ref64 = reference.astype("float64")
    return (ref64 + (value.astype("float64") - ref64).detach()).astype("float32")


def engine_layer_norm(
    x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor, epsilon: float = 1e-12
) -> paddle.Tensor:
    """LayerNorm over the last axis (of size h) as the packed engine computes it.

        mu = fl32(sum_i x_i / h)                  (sum and division in float64)
        c_i = fl32(x_i - mu)
        var = fl32(sum_i c_i^2 / h)               (squares, sum and division in float64)
        r = fl32(1 / fl32(sqrt(fl32(var + eps))))
        y_i = fl32(fl32(fl32(c_i * r) * gamma_i) + beta_i)

    The sign quantizer after every LayerNorm of a binarized student (``sgn(y - beta_q)``) flips where
    ``y`` is within a rounding error of its threshold, so the student must round as the engine
    does; Paddle's CPU ``layer_norm`` (float32 statistics) differs in the last bit of about 40% of
    the outputs. The float64 sums of float32 values are exact unless their magnitudes span more than
    ~29 binary orders; otherwise both orders of summation round the same way to float32 in all but
    vanishingly rare cases.

    Backward: exactly ``F.layer_norm``'s: with gradients enabled the value is attached to
    ``F.layer_norm(x, ...)`` by :func:`with_value`. Float32 input with a weight and a bias only (anything
    else is ``F.layer_norm``).
    """
    if x.dtype != paddle.float32 or weight is None or bias is None:
        return F.layer_norm(x, x.shape[-1:], weight, bias, epsilon)
    with paddle.no_grad():
        value = _engine_layer_norm_value(x, weight, bias, float(epsilon))
    if not paddle.in_dynamic_mode() or not paddle.is_grad_enabled() or all(t.stop_gradient for t in (x, weight, bias)):
        return value  # no gradient wanted (eval, or a static inference graph)
    return with_value(F.layer_norm(x, x.shape[-1:], weight, bias, epsilon), value)
