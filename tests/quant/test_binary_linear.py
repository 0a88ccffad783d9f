"""Binary x binary QuantLinear: integer product first, y = (t @ s) * (a * alpha) + b (the packed
engine's order), with exactly the gradients of the float formulation F.linear(Q_a(x), Q_w(W), b)."""

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

from paddle_binbert.quant import QuantLinear, get_quantizer
from paddle_binbert.quant.functional import binary_linear

WEIGHTS = [("bibert", 0), ("bwn", None), ("bwn", 0), ("bwn_centered", None)]
INPUTS = ["sign", "elastic_signed", "elastic_unsigned", "bool"]


def _layer(weight: str, axis, act: str, n_in: int, n_out: int, bias: bool = True, seed: int = 0) -> QuantLinear:
    paddle.seed(seed)
    layer = QuantLinear.from_linear(
        nn.Linear(n_in, n_out, bias_attr=None if bias else False),
        get_quantizer(weight, axis=axis),
        get_quantizer(act, num_channels=n_in) if act.startswith("elastic") else get_quantizer(act),
    )
    if bias:
        layer.bias.set_value(paddle.randn([n_out]) * 0.1)
    if act.startswith("elastic"):
        layer.input_quantizer.beta.set_value(paddle.randn([n_in]) * 0.1)
    return layer


def _old_formulation(layer: QuantLinear, x: paddle.Tensor) -> paddle.Tensor:
    """What QuantLinear computed before: the float product of the quantized operands."""
    return F.linear(layer.input_quantizer(x), layer.quantized_weight(), layer.bias)


def _grads(layer: QuantLinear, x: paddle.Tensor, g: paddle.Tensor, forward) -> list:
    params = [x, layer.weight] + ([layer.bias] if layer.bias is not None else [])
    params += [p for p in layer.input_quantizer.parameters()]  # elastic alpha / beta
    y = forward(x)
    return [t.numpy() for t in paddle.grad([y], params, grad_outputs=[g])]


@pytest.mark.parametrize("weight,axis", WEIGHTS)
@pytest.mark.parametrize("act", INPUTS)
@pytest.mark.parametrize("shape", [(2, 9, 70, 24), (5, 33, 7), (3, 128, 64)])
def test_gradients_equal_the_float_formulation(weight, axis, act, shape):
    """dL/dx, dL/dW, dL/db and the elastic dL/dalpha, dL/dbeta: bit for bit the old ones."""
    *lead, n_in, n_out = shape
    layer = _layer(weight, axis, act, n_in, n_out, seed=len(lead) + n_in)
    rng = np.random.default_rng(n_in * n_out)
    x = paddle.to_tensor(rng.standard_normal(lead + [n_in]).astype(np.float32) * 0.8, stop_gradient=False)
    g = paddle.to_tensor(rng.standard_normal(lead + [n_out]).astype(np.float32))
    layer(x)  # an elastic quantizer takes its alpha from the first batch
    new = _grads(layer, x, g, layer)
    old = _grads(layer, x, g, lambda v: _old_formulation(layer, v))
    assert len(new) == len(old) >= 3
    for a, b in zip(new, old):
        np.testing.assert_array_equal(a, b)
    with paddle.no_grad():
        np.testing.assert_allclose(layer(x).numpy(), _old_formulation(layer, x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("weight,axis", WEIGHTS)
@pytest.mark.parametrize("act", INPUTS)
def test_forward_is_integer_product_then_scales(weight, axis, act):
    """y = fl(fl(dot * fl(a * alpha_j)) + b_j), dot computed in integers (the engine's expression)."""
    n_in, n_out = 96, 40
    layer = _layer(weight, axis, act, n_in, n_out, seed=3)
    x = paddle.randn([4, 6, n_in])
    with paddle.no_grad():
        y = layer(x).numpy()
        xq = layer.input_quantizer(x).numpy()
        wq = layer.quantized_weight().numpy()
    unsigned = act in ("bool", "elastic_unsigned")
    t = (xq != 0).astype(np.int64) if unsigned else np.where(xq >= 0, 1, -1)
    s = np.where(wq >= 0, 1, -1)
    alpha = np.abs(wq).max(axis=0)
    if act.startswith("elastic"):
        alpha = np.float32(layer.input_quantizer.alpha.numpy()[0]) * alpha
    want = (t @ s).astype(np.float32) * alpha.astype(np.float32) + layer.bias.numpy()
    np.testing.assert_array_equal(y, want)


def test_zero_dot_and_zero_bias_give_exactly_zero():
    """The tie the float product resolved either way: as many +alpha_j as -alpha_j, summed in float,
    is a rounding error of either sign; the integer dot product makes it exactly 0 (sgn = +1)."""
    n_in, n_out = 64, 48
    layer = _layer("bibert", 0, "sign", n_in, n_out, bias=False, seed=5)
    x = paddle.randn([50, n_in])
    with paddle.no_grad():
        y = layer(x).numpy()
        wq = layer.quantized_weight().numpy()
    dot = np.where(x.numpy() >= 0, 1, -1) @ np.where(wq >= 0, 1, -1)
    assert (dot == 0).sum() > 50  # ~10% of the outputs are ties at width 64
    np.testing.assert_array_equal(y[dot == 0], 0.0)
    assert (y[dot != 0] != 0).all()


def test_binary_linear_without_bias_and_scale_gradients():
    """The functional form with no bias and no activation scale: forward and F.linear's gradients."""
    rng = np.random.default_rng(7)
    xq = paddle.to_tensor(np.where(rng.random([5, 30]) < 0.5, 1.0, -1.0).astype(np.float32), stop_gradient=False)
    alpha = (rng.random(12) + 0.5).astype(np.float32)
    wq = paddle.to_tensor(
        np.where(rng.random([30, 12]) < 0.5, 1.0, -1.0).astype(np.float32) * alpha, stop_gradient=False
    )
    g = paddle.to_tensor(rng.standard_normal([5, 12]).astype(np.float32))
    y = binary_linear(xq, wq)
    np.testing.assert_array_equal(y.numpy(), (xq.numpy() @ np.sign(wq.numpy())) * alpha)
    new = paddle.grad([y], [xq, wq], grad_outputs=[g])
    old = paddle.grad([F.linear(xq, wq)], [xq, wq], grad_outputs=[g])
    for a, b in zip(new, old):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_non_binary_operands_keep_the_float_product():
    """A multi-bit input, a ternary weight or a per-input-row weight scale: plain F.linear."""
    paddle.seed(9)
    lin = nn.Linear(16, 8)
    x = paddle.randn([3, 16])
    cases = [
        (get_quantizer("bibert", axis=0), get_quantizer("lsq_signed", bits=4)),
        (get_quantizer("twn", axis=None), get_quantizer("sign")),
        (get_quantizer("bwn", axis=1), get_quantizer("sign")),
        (get_quantizer("bwn", axis=None), None),
    ]
    for wq, iq in cases:
        layer = QuantLinear.from_linear(lin, wq, iq)
        assert not (layer.has_binary_weight() and layer._binary_input() is not None)
        with paddle.no_grad():
            got = layer(x).numpy()
            want = F.linear(x if iq is None else iq(x), layer.quantized_weight(), layer.bias).numpy()
        np.testing.assert_array_equal(got, want)


def test_folded_weight_keeps_the_integer_product():
    """Static export folds Q_w(W) into the weight; the layer still computes the engine's expression."""
    from paddle_binbert.export.static import folded_weight_quantizers

    layer = _layer("bibert", 0, "elastic_signed", 48, 20, seed=11)
    x = paddle.randn([2, 5, 48])
    with paddle.no_grad():
        want = layer(x).numpy()
        with folded_weight_quantizers(layer) as n:
            assert n == 1 and layer.weight_quantizer is None and layer.folded_binary_weight
            got = layer(x).numpy()
    assert not layer.folded_binary_weight and layer.weight_quantizer is not None
    np.testing.assert_array_equal(got, want)
