"""Ternary weight splitting (specs/splitting.md): W1 + W2 = W and bwn(W1) + bwn(W2) = twn(W) for
tensors of many shapes and distributions, the degenerate cases, the split layers, and a whole
tiny ternary BERT whose split binary version gives the same logits and saves / loads."""

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForSequenceClassification

from paddle_binbert import QuantConfig, load_model, quantize_model
from paddle_binbert.models import quant_config_of
from paddle_binbert.quant import QuantEmbedding, QuantLinear, get_quantizer
from paddle_binbert.quant.functional import bwn_weight, twn_weight
from paddle_binbert.splitting import (
    SPLIT_CONFIG_KEY,
    SplitQuantEmbedding,
    SplitQuantLinear,
    binary_config_for,
    split_layers_of,
    split_ternary_model,
    splittable_layers,
    tws_split,
)
from tests.tiny import tiny_bert_config

SHAPES = [(1,), (5,), (2, 3), (7, 5), (32, 64), (64, 16), (3, 4, 6)]
DISTRIBUTIONS = ["normal", "uniform", "laplace", "positive", "sparse"]


def sample(shape, dist, seed):
    rng = np.random.default_rng(seed)
    if dist == "normal":
        return rng.standard_normal(shape)
    if dist == "uniform":
        return rng.uniform(-1, 1, shape)
    if dist == "laplace":
        return rng.laplace(0, 0.05, shape)
    if dist == "positive":
        return rng.uniform(0, 1, shape)
    w = rng.standard_normal(shape)  # "sparse": many exact zeros
    return np.where(rng.uniform(size=shape) < 0.5, 0.0, w)


def quantized(fn, w, axis):
    return fn(paddle.to_tensor(w), axis=axis).numpy()


def check_split(w, axis, atol_scale=1e-6):
    """Both properties of the split, in the dtype of w."""
    w1, w2 = tws_split(w, axis)
    assert w1.dtype == w.dtype and w2.dtype == w.dtype and w1.shape == w.shape
    assert np.all(np.isfinite(w1)) and np.all(np.isfinite(w2))
    tol = 1e-12 if w.dtype == np.float64 else atol_scale
    scale = max(1.0, float(np.abs(w).max()))
    np.testing.assert_allclose(w1 + w2, w, rtol=0, atol=tol * scale)
    twn = quantized(twn_weight, w, axis)
    bsum = quantized(bwn_weight, w1, axis) + quantized(bwn_weight, w2, axis)
    np.testing.assert_allclose(bsum, twn, rtol=0, atol=tol * scale)
    # exact sign structure: the halves agree on the support, cancel outside it (all-zero slices
    # split into two zero halves, which bwn maps to 0)
    s1, s2 = np.where(w1 >= 0, 1, -1), np.where(w2 >= 0, 1, -1)
    both_zero = (w1 == 0) & (w2 == 0)
    assert np.all(twn[both_zero] == 0)
    assert np.all(((s1 == s2) == (twn != 0))[~both_zero])
    return w1, w2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [None, -1, 0])
def test_split_properties_many_shapes_and_distributions(dtype, axis):
    for i, shape in enumerate(SHAPES):
        for j, dist in enumerate(DISTRIBUTIONS):
            check_split(sample(shape, dist, 100 * i + j).astype(dtype), axis)


def test_matches_the_closed_form_of_the_paper():
    w = sample((16, 24), "normal", 3)
    w1, w2 = tws_split(w)
    absw, t = np.abs(w), quantized(twn_weight, w, None)
    alpha = absw[t != 0].mean()
    i, j, k = t != 0, (t == 0) & (w > 0), (t == 0) & (w <= 0)
    b = (w.size * alpha - absw.sum()) / (2 * (j | k).sum())
    a = (absw[i].sum() + absw[k].sum() - absw[j].sum()) / (2 * absw[i].sum())
    assert b > 0 and 0 < a < 1
    np.testing.assert_allclose(w1[i], a * w[i], atol=1e-12)
    np.testing.assert_allclose(w2[i], (1 - a) * w[i], atol=1e-12)
    np.testing.assert_allclose(w1[j], w[j] + b, atol=1e-12)
    np.testing.assert_allclose(w2[j], -b, atol=1e-12)
    np.testing.assert_allclose(w1[k], b, atol=1e-12)
    np.testing.assert_allclose(w2[k], w[k] - b, atol=1e-12)
    # both binary halves carry half of the ternary scale
    np.testing.assert_allclose([np.abs(w1).mean(), np.abs(w2).mean()], [alpha / 2, alpha / 2], atol=1e-12)


def test_row_wise_split_uses_each_rows_own_statistics():
    w = sample((6, 10), "normal", 4) * np.arange(1, 7)[:, None]  # rows of very different scales
    w1, w2 = check_split(w, -1)
    for r in range(6):
        r1, r2 = tws_split(w[r])
        np.testing.assert_allclose(w1[r], r1, atol=1e-12)
        np.testing.assert_allclose(w2[r], r2, atol=1e-12)


def test_paddle_in_paddle_out():
    w = paddle.to_tensor(sample((8, 4), "normal", 5).astype("float32"))
    w1, w2 = tws_split(w)
    assert isinstance(w1, paddle.Tensor) and w1.dtype == paddle.float32 and w1.shape == [8, 4]
    np.testing.assert_allclose((w1 + w2).numpy(), w.numpy(), atol=1e-6)


def test_empty_zero_set_gives_two_halves():
    w = np.array([[0.5, -0.5, 0.5], [-0.5, 0.5, 0.5]])  # every |W| > Delta: Z is empty
    w1, w2 = check_split(w, None)
    np.testing.assert_array_equal(w1, w / 2)
    np.testing.assert_array_equal(w2, w / 2)


def test_all_zero_matrix_and_rows_give_zeros():
    w1, w2 = check_split(np.zeros((3, 4), dtype=np.float32), None)
    assert not w1.any() and not w2.any()
    w = sample((4, 5), "normal", 6)
    w[1] = 0.0
    w1, w2 = check_split(w, -1)
    assert not w1[1].any() and not w2[1].any()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_skewed_zero_set_is_rebalanced(sign):
    # one large weight and 99 small same-sign ones: the paper's a = 1/2 - 99/100 < 0 would flip
    # the sign of W1 on I; the mirrored pattern keeps both properties.
    w = sign * np.array([50.0] + [1.0] * 99)
    t = quantized(twn_weight, w, None)
    assert (t != 0).sum() == 1
    absw, zero = np.abs(w), t == 0
    paper_a = (absw[~zero].sum() + absw[zero & (w <= 0)].sum() - absw[zero & (w > 0)].sum()) / (2 * absw[~zero].sum())
    assert not 0 < paper_a < 1
    for dtype in (np.float64, np.float32):
        check_split(w.astype(dtype), None)
        check_split(np.stack([w, -w, w[::-1]]).astype(dtype), -1)


def test_rejects_integer_and_empty_input():
    with pytest.raises(TypeError):
        tws_split(np.ones((2, 2), dtype=np.int64))
    with pytest.raises(ValueError):
        tws_split(np.zeros((0, 3)))


def test_split_linear_and_embedding_layers_are_equivalent():
    paddle.seed(1)
    lin = QuantLinear(12, 6, get_quantizer("twn"), get_quantizer("lsq_signed", bits=4))
    x = paddle.randn([3, 5, 12])
    ref = lin(x)
    split = SplitQuantLinear.from_ternary(lin)
    assert split.input_quantizer is lin.input_quantizer
    np.testing.assert_allclose(split(x).numpy(), ref.numpy(), atol=1e-6)
    np.testing.assert_allclose(split.weight.numpy(), lin.weight.numpy(), atol=1e-6)
    (q1, b1), (q2, b2) = split.binary_halves()
    np.testing.assert_allclose((b1 + b2).numpy(), lin.bias.numpy(), atol=1e-7)
    for q in (q1, q2):  # each half is binary: one magnitude
        assert len(np.unique(np.abs(q.numpy()))) == 1
    # identity STE: dL/dW1 = dL/dW2 = dL/dQ(W)
    split(x).sum().backward()
    np.testing.assert_allclose(split.weight1.grad.numpy(), split.weight2.grad.numpy())

    emb = QuantEmbedding(20, 8, get_quantizer("twn", axis=-1))
    ids = paddle.randint(0, 20, [2, 7])
    semb = SplitQuantEmbedding.from_ternary(emb)
    np.testing.assert_allclose(semb(ids).numpy(), emb(ids).numpy(), atol=1e-6)
    np.testing.assert_allclose(semb.quantized_weight().numpy(), emb.quantized_weight().numpy(), atol=1e-6)


# --------------------------------------------------------------------------------------------
# Whole model
# --------------------------------------------------------------------------------------------


def tiny_ternary_student(seed=0):
    paddle.seed(seed)
    cfg = tiny_bert_config(vocab_size=100)
    model = quantize_model(BertForSequenceClassification(cfg), "binarybert_ternary")
    ids = batch()
    model.train()
    model(ids)  # initialises the LSQ steps from this batch
    model.eval()
    return model


def batch():
    paddle.seed(7)
    ids = paddle.randint(1, 100, [3, 12])
    ids[1, 7:] = 0  # padding
    ids[2, 3:] = 0
    return ids


def test_split_model_gives_the_ternary_logits_and_preserves_every_matrix(tmp_path):
    model = tiny_ternary_student()
    ids = batch()
    ternary_logits = model(ids).numpy()
    bert = model.bert
    layers = dict(bert.named_sublayers())
    names = splittable_layers(model)
    assert len(names) == 2 * 6 + 2  # 6 linears per layer, pooler, word embedding
    latent = {n: layers[n].weight.numpy() for n in names}
    ternary = {n: layers[n].quantized_weight().numpy() for n in names}
    steps = {n: p.numpy() for n, p in model.named_parameters() if n.endswith(".step")}

    assert split_ternary_model(model) is model
    split_logits = model(ids).numpy()
    np.testing.assert_allclose(split_logits, ternary_logits, rtol=0, atol=1e-5)

    config = quant_config_of(model)
    assert config.name == "binarybert" and config.bits == (1, 1, 4)
    assert config.to_dict() == QuantConfig.from_preset("binarybert").to_dict()
    assert split_layers_of(model) == names
    layers = dict(bert.named_sublayers())
    for n in names:
        layer = layers[n]
        assert isinstance(layer, (SplitQuantLinear, SplitQuantEmbedding))
        assert type(layer.weight_quantizer).__name__ == "BwnWeightQuantizer"
        np.testing.assert_allclose(layer.weight1.numpy() + layer.weight2.numpy(), latent[n], atol=1e-6)
        np.testing.assert_allclose(layer.quantized_weight().numpy(), ternary[n], atol=1e-6)
    for n, value in steps.items():  # the learned activation quantizers are kept
        np.testing.assert_array_equal(dict(model.named_parameters())[n].numpy(), value)

    model.save_pretrained(str(tmp_path))
    loaded = load_model(str(tmp_path))
    assert split_layers_of(loaded) == names
    np.testing.assert_array_equal(loaded(ids).numpy(), split_logits)


def test_partial_split_binarizes_the_other_matrices():
    model = tiny_ternary_student()
    ids = batch()
    chosen = ["encoder.layers.0.linear1", "embeddings.word_embeddings"]
    split_ternary_model(model, layers=chosen)
    layers = dict(model.bert.named_sublayers())
    assert split_layers_of(model) == ["embeddings.word_embeddings", "encoder.layers.0.linear1"]
    assert isinstance(layers["encoder.layers.0.linear1"], SplitQuantLinear)
    other = layers["encoder.layers.1.linear1"]
    assert isinstance(other, QuantLinear)
    np.testing.assert_allclose(other.quantized_weight().numpy(), bwn_weight(other.weight).numpy())
    assert splittable_layers(model) == []
    assert np.all(np.isfinite(model(ids).numpy()))


def test_split_needs_a_ternary_unsplit_model():
    model = tiny_ternary_student()
    with pytest.raises(ValueError, match="not ternary"):
        split_ternary_model(model, layers=["encoder.layers.0.norm1"])
    split_ternary_model(model)
    with pytest.raises(ValueError, match="already split"):
        split_ternary_model(model)
    assert getattr(model.config, SPLIT_CONFIG_KEY)["source"] == "binarybert_ternary"
    with pytest.raises(ValueError, match="twn"):
        binary_config_for(QuantConfig.from_preset("binarybert"))
    custom = binary_config_for(
        QuantConfig.from_dict(
            {**QuantConfig.from_preset("binarybert_ternary").to_dict(), "activation_bits": 8, "name": "t8"}
        )
    )
    assert (custom.name, custom.bits, custom.activation_quantizer) == ("t8_split", (1, 1, 8), "lsq")
