"""Every quantizer's forward and straight-through backward against the numpy spec versions."""

import numpy as np
import paddle
import pytest

from paddle_binbert.quant import available_quantizers, get_quantizer, quantizer_arguments
from paddle_binbert.quant import functional as QF
from paddle_binbert.quant.quantizers import ElasticQuantizer, LsqQuantizer

from . import reference as R

RNG = np.random.default_rng(0)


def _t(a, grad=True):
    t = paddle.to_tensor(np.asarray(a, dtype="float32"))
    t.stop_gradient = not grad
    return t


def _run(fn, inputs, g):
    """Forward fn(*inputs) and the gradients of sum(out * g) w.r.t. every grad-requiring input."""
    out = fn(*inputs)
    wrt = [t for t in inputs if isinstance(t, paddle.Tensor) and not t.stop_gradient]
    grads = paddle.grad((out * _t(g, grad=False)).sum(), wrt)
    return out.numpy(), [gr.numpy() for gr in grads]


def _weight_with_ties(shape):
    w = RNG.normal(0, 0.8, size=shape).astype("float32")
    w.flat[::7] = 0.0  # exact zeros: sgn(0) must be +1
    w.flat[3] = 1.7  # outside the bibert STE window for sure
    return w


@pytest.mark.parametrize("shape", [(5, 3), (16, 8), (1, 4)])
@pytest.mark.parametrize("axis", [0, -1, None])
def test_bibert_weight(shape, axis):
    w = _weight_with_ties(shape)
    g = RNG.normal(size=shape)
    out, (gw,) = _run(lambda x: QF.bibert_weight(x, axis=axis), [_t(w)], g)
    ref_out, ref_g = R.bibert(w.astype("float64"), g, axis)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gw, ref_g, rtol=1e-5, atol=1e-6)


def test_bibert_weight_is_per_output_channel_of_in_out_weight():
    # [in=4, out=2]: column 1 is 10x column 0, so its scale must be 10x too.
    col = np.array([0.1, -0.2, 0.3, -0.4], dtype="float32")
    w = np.stack([col, 10 * col], axis=1)
    out = QF.bibert_weight(_t(w), axis=0).numpy()
    np.testing.assert_allclose(np.abs(out[:, 1]), 10 * np.abs(out[:, 0]), rtol=1e-6)
    np.testing.assert_allclose(np.abs(out[:, 0]), np.abs(col).mean(), rtol=1e-6)


def test_sign_tie_goes_to_plus_one():
    x = np.array([-1.0, -0.0, 0.0, 2.0], dtype="float32")
    np.testing.assert_array_equal(QF.sign_ste(_t(x)).numpy(), [-1, 1, 1, 1])
    np.testing.assert_array_equal(QF.sgn(_t(x)).numpy(), [-1, 1, 1, 1])


@pytest.mark.parametrize("name,centered", [("bwn", False), ("bwn_centered", True)])
@pytest.mark.parametrize("axis", [None, -1])
def test_bwn_weights(name, centered, axis):
    w = _weight_with_ties((12, 6))
    g = RNG.normal(size=w.shape)
    q = get_quantizer(name, axis=axis)
    out, (gw,) = _run(q, [_t(w)], g)
    ref_out, ref_g = R.bwn(w.astype("float64"), g, axis, centered=centered)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gw, ref_g, rtol=1e-6)


@pytest.mark.parametrize("axis", [None, -1])
def test_twn_weight(axis):
    w = _weight_with_ties((10, 7))
    g = RNG.normal(size=w.shape)
    out, (gw,) = _run(get_quantizer("twn", axis=axis), [_t(w)], g)
    ref_out, ref_g = R.twn(w.astype("float64"), g, axis)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gw, ref_g, rtol=1e-6)
    rows = [out] if axis is None else list(out)
    assert all(len(np.unique(np.round(r, 6))) <= 3 for r in rows)  # ternary per scale group


def test_twn_all_zero_matrix_gives_zero_not_nan():
    out = QF.twn_weight(_t(np.zeros((3, 3)))).numpy()
    assert np.all(out == 0)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_uniform_weight(bits):
    w = RNG.normal(size=(9, 5))
    g = RNG.normal(size=w.shape)
    out, (gw,) = _run(get_quantizer("uniform", bits=bits), [_t(w)], g)
    ref_out, ref_g = R.uniform_w(w.astype("float32").astype("float64"), g, bits)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gw, ref_g, rtol=1e-6)


def test_sign_and_bool_ste():
    x = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], dtype="float32")
    g = RNG.normal(size=x.shape)
    for fn, ref in ((QF.sign_ste, R.sign), (QF.bool_ste, R.boolean)):
        out, (gx,) = _run(fn, [_t(x)], g)
        ref_out, ref_g = ref(x.astype("float64"), g)
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_allclose(gx, ref_g, rtol=1e-6)
    assert QF.bool_ste(_t([0.0])).numpy()[0] == 0.0  # tie gives 0 (PyTorch release)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("channels", [1, 6])
def test_elastic(signed, channels):
    x = RNG.normal(size=(3, 4, 6)).astype("float32")
    if not signed:
        x = np.abs(x)
    alpha = np.array([0.8], dtype="float32")
    beta = RNG.normal(0, 0.3, size=(channels,)).astype("float32")
    g = RNG.normal(size=x.shape)
    fn = QF.elastic_signed if signed else QF.elastic_unsigned
    out, (gx, ga, gb) = _run(fn, [_t(x), _t(alpha), _t(beta)], g)
    ref = R.elastic_signed if signed else R.elastic_unsigned
    r_out, r_gx, r_ga, r_gb = ref(x.astype("float64"), alpha.astype("float64"), beta.astype("float64"), g)
    np.testing.assert_allclose(out, r_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gx, r_gx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ga, [r_ga], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gb, r_gb, rtol=1e-4, atol=1e-5)


def test_elastic_unsigned_half_rounds_up_to_alpha():
    out = QF.elastic_unsigned(_t([0.5, 0.49, 2.0, -1.0]), _t([1.0]), _t([0.0])).numpy()
    np.testing.assert_array_equal(out, [1.0, 0.0, 1.0, 0.0])


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("signed", [True, False])
def test_lsq(bits, signed):
    x = RNG.normal(0, 2, size=(4, 9)).astype("float32")
    s = np.array([0.3], dtype="float32")
    g = RNG.normal(size=x.shape)
    out, (gx, gs) = _run(lambda a, b: QF.lsq(a, b, bits, signed), [_t(x), _t(s)], g)
    r_out, r_gx, r_gs = R.lsq(x.astype("float64"), s.astype("float64"), bits, signed, g)
    np.testing.assert_allclose(out, r_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gx, r_gx, rtol=1e-6)
    np.testing.assert_allclose(gs, np.ravel(r_gs), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_uniform_clip(bits):
    x = RNG.normal(0, 2, size=(5, 7)).astype("float32")
    c = np.array([2.5], dtype="float32")
    g = RNG.normal(size=x.shape)
    out, (gx, gc) = _run(lambda a, b: QF.uniform_clip(a, b, bits), [_t(x), _t(c)], g)
    r_out, r_gx, r_gc = R.uniform_clip(x.astype("float64"), 2.5, bits, g)
    np.testing.assert_allclose(out, r_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, r_gx, rtol=1e-6)
    np.testing.assert_allclose(gc, [r_gc], rtol=1e-4, atol=1e-5)


def test_no_gradient_is_returned_for_frozen_inputs():
    x = _t(RNG.normal(size=(2, 3)))
    alpha, beta = _t([1.0], grad=False), _t([0.0], grad=False)
    out = QF.elastic_signed(x, alpha, beta)
    (gx,) = paddle.grad(out.sum(), [x])
    assert gx.shape == [2, 3]


def test_first_batch_initialisation():
    x = RNG.normal(size=(4, 8)).astype("float32")
    for q, expected in (
        (ElasticQuantizer(signed=True, num_channels=8), 2 * np.abs(x).mean()),
        (ElasticQuantizer(signed=False, num_channels=1), 4 * np.abs(x).mean()),
        (LsqQuantizer(bits=4, signed=True), 2 * np.abs(x).mean() / np.sqrt(7)),
    ):
        q(_t(x, grad=False))
        param = q.alpha if isinstance(q, ElasticQuantizer) else q.step
        np.testing.assert_allclose(param.numpy(), [expected], rtol=1e-5)
        q(_t(10 * x, grad=False))  # the second batch does not re-initialise
        np.testing.assert_allclose(param.numpy(), [expected], rtol=1e-5)
        assert q.initialized.item() == 1.0


def test_registry_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="valid names: .*bibert.*sign"):
        get_quantizer("xnor")


@pytest.mark.parametrize(
    "name, kwargs, unknown, accepted",
    [
        ("bibert", {"axis": 0, "bits": 1}, "bits", "axis"),
        ("sign", {"num_channels": 8}, "num_channels", "no arguments"),
        ("elastic_signed", {"num_channels": 8, "bits": 1}, "bits", "num_channels"),
        ("lsq_unsigned", {"bits": 4, "axis": 0, "signed": True}, "axis, signed", "bits"),
        ("uniform", {"bits": 4, "num_channels": 3}, "num_channels", "bits, axis"),
    ],
)
def test_registry_refuses_arguments_the_quantizer_does_not_take(name, kwargs, unknown, accepted):
    with pytest.raises(TypeError) as err:
        get_quantizer(name, **kwargs)
    assert str(err.value) == f"quantizer {name!r} does not take {unknown}; it accepts: {accepted}"


def test_registry_passes_every_accepted_argument():
    for name in available_quantizers():
        assert get_quantizer(name) is not None  # every argument has a default
    assert quantizer_arguments("sign") == ()
    assert quantizer_arguments("uniform") == ("bits", "axis")
    assert get_quantizer("bibert").axis == 0 and get_quantizer("bwn", axis=-1).axis == -1
    assert get_quantizer("uniform", bits=4, axis=0).bits == 4
    q = get_quantizer("elastic_unsigned", num_channels=5)
    assert not q.signed and q.num_channels == 5 and q.beta.shape == [5]
    q = get_quantizer("lsq_signed", bits=2)
    assert q.signed and q.bits == 2
    assert get_quantizer("uniform_clip", bits=2).bits == 2
    with pytest.raises(ValueError, match="valid names"):
        quantizer_arguments("xnor")
