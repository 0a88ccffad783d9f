"""The packed engine's float expressions in the simulated student (BiT attention, LayerNorm): forward
values as the engine rounds them, gradients bit for bit those of the float formulations they replace
(``paddle.matmul(xq * c, yq)``, ``F.softmax``, ``F.layer_norm``)."""

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest
from paddle.nn.layer.transformer import _convert_attention_mask

from paddle_binbert.models.attention import QuantMultiHeadAttention
from paddle_binbert.quant import EngineLayerNorm
from paddle_binbert.quant import functional as QF
from paddle_binbert.quant.quantizers import ElasticQuantizer

f32 = np.float32


def _split(x: paddle.Tensor, heads: int) -> paddle.Tensor:
    return x.reshape([0, 0, heads, x.shape[-1] // heads]).transpose([0, 2, 1, 3])


def _elastic(signed: bool, channels: int, x: paddle.Tensor, seed: int) -> ElasticQuantizer:
    """An elastic quantizer initialised from ``x`` (alpha = 2 or 4 mean|x|) with non-zero betas."""
    q = ElasticQuantizer(signed=signed, num_channels=channels)
    q(x)
    paddle.seed(seed)
    q.beta.set_value(paddle.randn([channels]) * (0.2 if signed else 0.01))
    return q


def _grads(out: paddle.Tensor, params, g: paddle.Tensor) -> list:
    return [t.numpy() for t in paddle.grad([out], params, grad_outputs=[g])]


# ------------------------------------------------------------------------------ binary_matmul


@pytest.mark.parametrize("shape", [(2, 3, 9, 8), (1, 4, 33, 16), (3, 2, 5, 24)])
def test_scores_gradients_equal_the_float_formulation(shape):
    """S = sgn(Q) sgn(K)^T * fl(fl(a_q c) a_k): gradients of x, alphas and betas equal those of
    paddle.matmul(Qq * c, Kq, transpose_y=True) bit for bit; the value is the integer formula."""
    b, heads, n, d = shape
    h = heads * d
    rng = np.random.default_rng(n * d)
    q = paddle.to_tensor(rng.standard_normal([b, n, h]).astype(f32), stop_gradient=False)
    k = paddle.to_tensor(rng.standard_normal([b, n, h]).astype(f32) * 1.5, stop_gradient=False)
    qq_, kq_ = _elastic(True, h, q, 1), _elastic(True, h, k, 2)
    c = d**-0.5
    g = paddle.to_tensor(rng.standard_normal([b, heads, n, n]).astype(f32))
    params = [q, k, qq_.alpha, qq_.beta, kq_.alpha, kq_.beta]

    def new():
        qq, kq = _split(qq_(q), heads), _split(kq_(k), heads)
        return QF.binary_matmul(qq, kq, qq_.alpha, kq_.alpha, pre_scale=c, transpose_y=True)

    def old():
        qq, kq = _split(qq_(q), heads), _split(kq_(k), heads)
        return paddle.matmul(qq * c, kq, transpose_y=True)

    for a, ref in zip(_grads(new(), params, g), _grads(old(), params, g)):
        np.testing.assert_array_equal(a, ref)
    with paddle.no_grad():
        got, ref = new().numpy(), old().numpy()
    sq = np.where(q.numpy() - qq_.beta.numpy() >= 0, 1, -1).reshape(b, n, heads, d).transpose(0, 2, 1, 3)
    sk = np.where(k.numpy() - kq_.beta.numpy() >= 0, 1, -1).reshape(b, n, heads, d).transpose(0, 2, 1, 3)
    cqk = f32(f32(qq_.alpha.numpy()[0] * f32(c)) * kq_.alpha.numpy()[0])  # the engine's folded scale
    np.testing.assert_array_equal(got, (sq @ sk.transpose(0, 1, 3, 2)).astype(f32) * cqk)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 3, 9, 8), (1, 4, 40, 16)])
def test_context_gradients_equal_the_float_formulation(shape):
    """context = 1[Pq != 0] sgn(V) * fl(a_p a_v): gradients equal paddle.matmul(Pq, Vq)'s bit for bit."""
    b, heads, n, d = shape
    h = heads * d
    rng = np.random.default_rng(n + d)
    p = paddle.to_tensor(F.softmax(paddle.to_tensor(rng.standard_normal([b, heads, n, n]).astype(f32) * 2)).numpy())
    p.stop_gradient = False
    v = paddle.to_tensor(rng.standard_normal([b, n, h]).astype(f32), stop_gradient=False)
    pq_, vq_ = _elastic(False, 1, p, 3), _elastic(True, h, v, 4)
    real = paddle.to_tensor((rng.random([b, 1, 1, n]) < 0.8).astype(f32))  # masked keys: 0
    g = paddle.to_tensor(rng.standard_normal([b, heads, n, d]).astype(f32))
    params = [p, v, pq_.alpha, pq_.beta, vq_.alpha, vq_.beta]

    def new():
        pq, vq = pq_(p) * real, _split(vq_(v), heads)
        return QF.binary_matmul(pq, vq, pq_.alpha, vq_.alpha, x_unsigned=True)

    def old():
        return paddle.matmul(pq_(p) * real, _split(vq_(v), heads))

    for a, ref in zip(_grads(new(), params, g), _grads(old(), params, g)):
        np.testing.assert_array_equal(a, ref)
    with paddle.no_grad():
        got, ref, pq = new().numpy(), old().numpy(), (pq_(p) * real).numpy()
    assert 0 < (pq != 0).mean() < 1
    sv = np.where(v.numpy() - vq_.beta.numpy() >= 0, 1, -1).reshape(b, n, heads, d).transpose(0, 2, 1, 3)
    dot = (pq != 0).astype(np.int64) @ sv
    cpv = f32(pq_.alpha.numpy()[0] * vq_.alpha.numpy()[0])
    np.testing.assert_array_equal(got, dot.astype(f32) * cpv)
    assert (dot == 0).any()
    np.testing.assert_array_equal(got[dot == 0], 0.0)  # exactly 0, as the engine's popcount gives
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_binary_matmul_negative_scale_keeps_the_value():
    """A signed operand with a negative alpha: sgn(xq) flips, |alpha| scales, the value is unchanged."""
    rng = np.random.default_rng(5)
    t = np.where(rng.random([2, 3, 6, 8]) < 0.5, 1.0, -1.0).astype(f32)
    u = np.where(rng.random([2, 3, 7, 8]) < 0.5, 1.0, -1.0).astype(f32)
    a, bb = f32(-0.7), f32(1.3)
    out = QF.binary_matmul(
        paddle.to_tensor(t * a), paddle.to_tensor(u * bb), paddle.to_tensor([a]), paddle.to_tensor([bb]),
        pre_scale=0.125, transpose_y=True,
    ).numpy()  # fmt: skip
    np.testing.assert_array_equal(out, (t @ u.transpose(0, 1, 3, 2)) * f32(f32(a * f32(0.125)) * bb))


# ------------------------------------------------------------------------------ engine_softmax / engine_exp


def test_engine_exp_is_an_accurate_exponential():
    x = np.concatenate([np.linspace(-87, 88, 200001), [0.0, -1e-8, 1e-8, -0.5, 0.5, 88.5]]).astype(f32)
    got = QF.engine_exp(paddle.to_tensor(x)).numpy()
    ref = np.exp(x.astype(np.float64))
    assert np.abs(got / ref - 1).max() < 2.5e-7
    assert QF.engine_exp(paddle.to_tensor(f32([0.0]))).numpy()[0] == 1.0
    far = QF.engine_exp(paddle.to_tensor(f32([-1e4, -200.0, -np.inf]))).numpy()
    np.testing.assert_array_equal(far, 0.0)  # masked keys (-1e4) contribute exactly nothing


@pytest.mark.parametrize("n", [1, 7, 16, 17, 40, 130])
def test_engine_softmax_gradient_equals_softmax(n):
    rng = np.random.default_rng(n)
    s = rng.standard_normal([2, 3, 5, n]).astype(f32) * 3
    s[1, :, :, n // 2 + 1 :] += f32(-1e4)  # padded keys
    st = paddle.to_tensor(s, stop_gradient=False)
    g = paddle.to_tensor(rng.standard_normal(s.shape).astype(f32))
    new, old = QF.engine_softmax(st), F.softmax(st)
    np.testing.assert_array_equal(_grads(new, [st], g)[0], _grads(old, [st], g)[0])
    p = new.numpy()
    np.testing.assert_allclose(p, old.numpy(), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=2e-6)
    np.testing.assert_array_equal(p[1, :, :, n // 2 + 1 :], 0.0)


def test_engine_softmax_other_dtype_is_softmax():
    s = paddle.randn([2, 5], dtype="float64")
    np.testing.assert_array_equal(QF.engine_softmax(s).numpy(), F.softmax(s).numpy())


# ------------------------------------------------------------------------------ engine_layer_norm


def _numpy_engine_layer_norm(x, w, b, eps):
    h = x.shape[-1]
    mean = (x.astype(np.float64).sum(-1, keepdims=True) / h).astype(f32)
    c = (x - mean).astype(f32)
    var = ((c.astype(np.float64) ** 2).sum(-1, keepdims=True) / h).astype(f32)
    root = np.sqrt((var + f32(eps)).astype(f32))  # numpy's float32 sqrt is correctly rounded
    inv = (f32(1.0) / root).astype(f32)
    return ((c * inv) * w + b).astype(f32)


@pytest.mark.parametrize("h", [32, 48, 384])
def test_engine_layer_norm_value_and_gradients(h):
    """Value: the engine's expression to the bit; gradients: F.layer_norm's, bit for bit."""
    rng = np.random.default_rng(h)
    x0 = (rng.standard_normal([4, 9, h]) * 0.8 + rng.standard_normal([4, 9, 1]) * 3).astype(f32)
    norm = nn.LayerNorm(h, epsilon=1e-12)
    norm.weight.set_value(paddle.to_tensor((1 + rng.standard_normal(h) * 0.1).astype(f32)))
    norm.bias.set_value(paddle.to_tensor((rng.standard_normal(h) * 0.1).astype(f32)))
    eng = EngineLayerNorm.from_layer_norm(norm)
    assert list(eng.state_dict()) == list(norm.state_dict()) and eng._epsilon == norm._epsilon
    x = paddle.to_tensor(x0, stop_gradient=False)
    g = paddle.to_tensor(rng.standard_normal(x0.shape).astype(f32))
    new = _grads(eng(x * 2.0), [x, eng.weight, eng.bias], g)
    old = _grads(norm(x * 2.0), [x, norm.weight, norm.bias], g)
    for a, ref in zip(new, old):
        np.testing.assert_array_equal(a, ref)
    want = _numpy_engine_layer_norm(x0, norm.weight.numpy(), norm.bias.numpy(), 1e-12)
    np.testing.assert_array_equal(eng(x).numpy(), want)  # with gradients: F.layer_norm's carrying the value
    with paddle.no_grad():
        got, ref = eng(x).numpy(), norm(x).numpy()
    np.testing.assert_array_equal(got, want)
    assert (got != ref).mean() > 0.05  # Paddle's layer_norm rounds differently (why this layer exists)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=2e-6)


def test_engine_layer_norm_input_only_gradient_and_fallbacks():
    paddle.seed(3)
    norm = EngineLayerNorm.from_layer_norm(nn.LayerNorm(16))
    x = paddle.randn([3, 16])
    x.stop_gradient = False
    for p in norm.parameters():
        p.stop_gradient = True
    (gx,) = paddle.grad([norm(x)], [x], grad_outputs=[paddle.ones([3, 16])])
    (ref,) = paddle.grad([F.layer_norm(x, [16], norm.weight, norm.bias, norm._epsilon)], [x], [paddle.ones([3, 16])])
    np.testing.assert_array_equal(gx.numpy(), ref.numpy())
    wide = nn.LayerNorm([4, 16])  # several normalised axes: nn.LayerNorm's own computation
    x4 = paddle.randn([2, 3, 4, 16])
    np.testing.assert_array_equal(EngineLayerNorm.from_layer_norm(wide)(x4).numpy(), wide(x4).numpy())
    plain = nn.LayerNorm(16, weight_attr=False, bias_attr=False)
    np.testing.assert_array_equal(EngineLayerNorm.from_layer_norm(plain)(x).numpy(), plain(x).numpy())


# ------------------------------------------------------------------------------ BiT attention layer


def _bit_attention(seed: int = 0, heads: int = 4, hidden: int = 32) -> QuantMultiHeadAttention:
    paddle.seed(seed)
    mha = nn.MultiHeadAttention(hidden, heads, dropout=0.1)
    qs = [ElasticQuantizer(True, hidden) for _ in range(3)]
    return QuantMultiHeadAttention(mha, "bit", *qs, prob_quantizer=ElasticQuantizer(False, 1))


def _old_bit_forward(attn: QuantMultiHeadAttention, x: paddle.Tensor, attn_mask) -> paddle.Tensor:
    """QuantMultiHeadAttention's BiT forward before the engine's expressions (eval mode)."""
    q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
    qq, kq, vq = (attn._split_heads(f(t)) for f, t in zip(
        (attn.query_quantizer, attn.key_quantizer, attn.value_quantizer), (q, k, v)))  # fmt: skip
    scores = paddle.matmul(qq * (attn.head_dim**-0.5), kq, transpose_y=True)
    mask = _convert_attention_mask(attn_mask, scores.dtype)
    probs = attn.prob_quantizer(F.softmax(scores + mask)) * (mask > -1).astype("float32")
    out = paddle.matmul(probs, vq).transpose([0, 2, 1, 3]).reshape([0, 0, attn.embed_dim])
    return attn.out_proj(out)


def test_bit_attention_uses_the_engine_expressions_and_keeps_the_value():
    attn = _bit_attention()
    assert attn.elastic_binary()
    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.standard_normal([3, 11, 32]).astype(f32))
    mask = np.zeros([3, 1, 1, 11], f32)
    mask[1, ..., 6:] = -1e4
    mask = paddle.to_tensor(mask)
    attn.train()
    attn(x, attn_mask=mask)  # elastic scales from the first batch
    attn.eval()
    for quantizer in (attn.query_quantizer, attn.key_quantizer, attn.value_quantizer):
        quantizer.beta.set_value(paddle.to_tensor(rng.standard_normal(32).astype(f32) * 0.1))
    with paddle.no_grad():
        got, ref = attn(x, attn_mask=mask).numpy(), _old_bit_forward(attn, x, mask).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    # the layer's gradients stay those of the float formulation up to float rounding of the forward
    params = [p for p in attn.parameters() if not p.stop_gradient]
    g = paddle.to_tensor(rng.standard_normal(got.shape).astype(f32))
    for a, b in zip(_grads(attn(x, attn_mask=mask), params, g), _grads(_old_bit_forward(attn, x, mask), params, g)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # the BiBERT and k-bit variants are not elastic binary: unchanged float formulation
    mha = nn.MultiHeadAttention(32, 4)
    assert not QuantMultiHeadAttention(mha, "bi").elastic_binary()
    assert not QuantMultiHeadAttention(mha, "quant").elastic_binary()
