"""Independent numpy versions of specs/quantizers.md, written from the spec table (not from the
library code), for the forward/backward tests. Each returns (forward, grads...) given upstream g."""

import numpy as np


def sgn(x):
    return np.where(x >= 0, 1.0, -1.0)


def red_mean(x, axis):
    return x.mean() if axis is None else x.mean(axis=axis, keepdims=True)


def bibert(w, g, axis):
    mu = red_mean(w, axis)
    alpha = red_mean(np.abs(w), axis)
    return alpha * sgn(w - mu), g * (np.abs(w - mu) <= 1)


def bwn(w, g, axis, centered=False):
    alpha = red_mean(np.abs(w), axis)
    mu = red_mean(w, axis) if centered else 0.0
    return alpha * sgn(w - mu), g


def twn(w, g, axis):
    def one(row):
        delta = 0.7 * np.abs(row).mean()
        mask = np.abs(row) > delta
        alpha = np.abs(row)[mask].mean() if mask.any() else 0.0
        return alpha * sgn(row) * mask

    if axis is None:
        out = one(w)
    else:
        out = np.apply_along_axis(one, axis, w)
    return out, g


def uniform_w(w, g, bits):
    scale = np.abs(w).max() / (2 ** (bits - 1) - 1)
    return np.round(w / scale) * scale, g


def sign(x, g):
    return sgn(x), g * (np.abs(x) <= 1)


def boolean(s, g):
    return (s > 0).astype(float), g * (np.abs(s) <= 1)


def elastic_signed(x, alpha, beta, g):
    d = x - beta
    q = alpha * sgn(d)
    gx = g * (np.abs(d / alpha) <= 1)
    galpha = np.sum(g * sgn(d)) / np.sqrt(x.size)
    gbeta = -gx.reshape(-1, beta.size).sum(axis=0) if beta.size > 1 else -gx.sum(keepdims=True).reshape(1)
    return q, gx, galpha, gbeta


def elastic_unsigned(x, alpha, beta, g):
    u = (x - beta) / alpha
    r = np.floor(np.clip(u, 0, 1) + 0.5)
    q = alpha * r
    gx = g * ((u >= 0) & (u <= 1))
    d_alpha = np.where(u < 0, 0.0, np.where(u > 1, 1.0, r - u))
    galpha = np.sum(g * d_alpha) / np.sqrt(x.size)
    gbeta = -gx.reshape(-1, beta.size).sum(axis=0) if beta.size > 1 else -gx.sum(keepdims=True).reshape(1)
    return q, gx, galpha, gbeta


def lsq(x, s, bits, signed, g):
    qn, qp = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    v = x / s
    r = np.round(np.clip(v, qn, qp))
    gx = g * ((v >= qn) & (v <= qp))
    ds = np.where(v < qn, qn, np.where(v > qp, qp, r - v))
    gs = np.sum(g * ds) / np.sqrt(x.size * qp)
    return r * s, gx, gs


def uniform_clip(x, c, bits, g):
    xc = np.clip(x, -c, c)
    scale = np.abs(xc).max() / (2 ** (bits - 1) - 1)
    q = np.round(xc / scale) * scale
    gx = g * (np.abs(x) <= c)
    gc = np.sum(g * sgn(x) * (np.abs(x) > c))
    return q, gx, gc
