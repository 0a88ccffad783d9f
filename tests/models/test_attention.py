"""The attention variants against numpy versions of specs/attention.md."""

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from paddle_binbert.models import QuantMultiHeadAttention
from paddle_binbert.quant import QuantLinear
from paddle_binbert.quant.quantizers import ElasticQuantizer, SignQuantizer

H, HEADS, L, B = 16, 2, 5, 2
D = H // HEADS


def make(variant):
    paddle.seed(3)
    mha = nn.MultiHeadAttention(H, HEADS, dropout=0.0)
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        setattr(mha, name, QuantLinear.from_linear(getattr(mha, name)))
    if variant == "bi":
        quants = [SignQuantizer() for _ in range(3)]
        prob = None
    elif variant == "bit":
        quants = [ElasticQuantizer(True, H) for _ in range(3)]
        prob = ElasticQuantizer(False, 1)
    else:
        quants, prob = [None] * 3, None
    return mha, QuantMultiHeadAttention(mha, variant, *quants, prob_quantizer=prob)


def inputs():
    paddle.seed(4)
    x = paddle.randn([B, L, H])
    mask = np.zeros([B, 1, 1, L], dtype="float32")
    mask[1, ..., 3:] = -1e4
    return x, paddle.to_tensor(mask)


def heads(a):
    return a.reshape(B, L, HEADS, D).transpose(0, 2, 1, 3)


def merge_out(ctx, attn):
    ctx = ctx.transpose(0, 2, 1, 3).reshape(B, L, H)
    return ctx @ attn.out_proj.weight.numpy() + attn.out_proj.bias.numpy()


def sgn(a):
    return np.where(a >= 0, 1.0, -1.0)


def test_quant_attention_at_32_bits_equals_paddle_mha():
    mha_ref = nn.MultiHeadAttention(H, HEADS, dropout=0.0)
    mha, attn = make("quant")
    mha_ref.set_state_dict(mha.state_dict())
    x, mask = inputs()
    np.testing.assert_array_equal(attn(x, x, x, mask).numpy(), mha_ref(x, x, x, mask).numpy())


def test_bi_attention_formula():
    _, attn = make("bi")
    attn.record = True
    x, mask = inputs()
    out = attn(x, x, x, mask).numpy()
    rec = attn.last_record
    q, k, v = (heads(sgn(t.numpy())) for t in (rec.query, rec.key, rec.value))
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D) + mask.numpy()
    np.testing.assert_allclose(rec.scores.numpy(), s, rtol=1e-6, atol=1e-6)
    a = (s > 0).astype(float)  # ties (s == 0) give 0
    assert (s == 0).any(), "the test should exercise the tie rule"
    np.testing.assert_allclose(out, merge_out(a @ v, attn), rtol=1e-5, atol=1e-5)


def test_bit_attention_formula():
    _, attn = make("bit")
    attn.record = True
    x, mask = inputs()
    out = attn(x, x, x, mask).numpy()
    rec = attn.last_record

    def elastic_s(t, quant):
        return quant.alpha.numpy() * sgn(t - quant.beta.numpy())

    q = heads(elastic_s(rec.query.numpy(), attn.query_quantizer))
    k = heads(elastic_s(rec.key.numpy(), attn.key_quantizer))
    v = heads(elastic_s(rec.value.numpy(), attn.value_quantizer))
    s = (q / np.sqrt(D)) @ k.transpose(0, 1, 3, 2) + mask.numpy()
    np.testing.assert_allclose(rec.scores.numpy(), s, rtol=1e-5, atol=1e-5)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    alpha = attn.prob_quantizer.alpha.numpy()
    np.testing.assert_allclose(alpha, 4 * p.mean(), rtol=1e-5)  # first-batch init, unsigned set
    pq = alpha * np.floor(np.clip(p / alpha, 0, 1) + 0.5)
    np.testing.assert_allclose(out, merge_out(pq @ v, attn), rtol=1e-4, atol=1e-5)


def test_need_weights_returns_probabilities():
    _, attn = make("quant")
    attn.need_weights = True
    x, mask = inputs()
    out, probs = attn(x, x, x, mask)
    assert probs.shape == [B, HEADS, L, L]
    np.testing.assert_allclose(probs.numpy().sum(-1), 1.0, rtol=1e-5)


def test_cross_attention_is_rejected():
    _, attn = make("quant")
    x, _ = inputs()
    with pytest.raises(NotImplementedError):
        attn(x, paddle.randn([B, L, H]))


def make_with_dropout(variant, p):
    mha, attn = make(variant)
    attn.dropout = p
    return attn


def test_bi_attention_dropout_acts_on_scores_before_bool():
    """Training: A = bool(dropout(S)) as in the BiBERT release, so the attention entering A @ sgn(V)
    stays exactly in {0, 1} (no 1 / (1 - p) upscaling) and dropout only removes attended keys."""
    attn = make_with_dropout("bi", 0.5)
    attn.need_weights = True
    x, mask = inputs()
    attn.eval()
    _, a_eval = attn(x, x, x, mask)
    attn.train()
    attn.record = True
    paddle.seed(5)
    out, a_train = attn(x, x, x, mask)
    a_eval, a_train = a_eval.numpy(), a_train.numpy()
    assert set(np.unique(a_train)) <= {0.0, 1.0}
    assert (a_train <= a_eval).all(), "dropout may only turn attended keys off"
    assert a_train.sum() < a_eval.sum(), "p = 0.5 should drop some attended keys"
    v = heads(sgn(attn.last_record.value.numpy()))
    np.testing.assert_allclose(out.numpy(), merge_out(a_train @ v, attn), rtol=1e-5, atol=1e-5)


def test_bi_attention_dropout_changes_nothing_in_eval():
    x, mask = inputs()
    _, plain = make("bi")
    attn = make_with_dropout("bi", 0.5)
    plain.eval()
    attn.eval()
    np.testing.assert_array_equal(attn(x, x, x, mask).numpy(), plain(x, x, x, mask).numpy())


def test_bi_attention_dropout_backward_runs():
    """Training backward goes through dropout(S) and the bool STE."""
    attn = make_with_dropout("bi", 0.3)
    attn.train()
    x, mask = inputs()
    x.stop_gradient = False
    paddle.seed(6)
    attn(x, x, x, mask).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
