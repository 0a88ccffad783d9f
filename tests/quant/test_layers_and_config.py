"""QuantLinear / QuantEmbedding semantics and QuantConfig loading/validation."""

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from paddle_binbert import QuantConfig, available_presets
from paddle_binbert.quant import QuantEmbedding, QuantLinear, get_quantizer
from paddle_binbert.quant.functional import bibert_weight, bwn_weight


def test_quantlinear_without_quantizers_is_nn_linear():
    paddle.seed(1)
    lin = nn.Linear(7, 5)
    q = QuantLinear.from_linear(lin)
    x = paddle.randn([3, 7])
    x.stop_gradient = False
    np.testing.assert_array_equal(q(x).numpy(), lin(x).numpy())
    (g_ref,) = paddle.grad(lin(x).sum(), [lin.weight])
    (g_q,) = paddle.grad(q(x).sum(), [q.weight])
    np.testing.assert_array_equal(g_q.numpy(), g_ref.numpy())


def test_quantlinear_forward_formula():
    paddle.seed(2)
    lin = nn.Linear(6, 4)
    q = QuantLinear.from_linear(lin, get_quantizer("bibert", axis=0), get_quantizer("sign"))
    x = paddle.randn([2, 6])
    xs = np.where(x.numpy() >= 0, 1.0, -1.0)
    expected = xs @ bibert_weight(lin.weight, axis=0).numpy() + lin.bias.numpy()
    np.testing.assert_allclose(q(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_quant_embedding_gathered_rows_equal_full_table():
    paddle.seed(3)
    emb = nn.Embedding(20, 8)
    q = QuantEmbedding.from_embedding(emb, get_quantizer("bwn", axis=-1))
    ids = paddle.to_tensor([[1, 5, 5, 19], [0, 2, 3, 4]])
    full = bwn_weight(emb.weight, axis=-1).numpy()
    np.testing.assert_allclose(q(ids).numpy(), full[ids.numpy()], rtol=1e-6)
    np.testing.assert_allclose(q.quantized_weight().numpy(), full, rtol=1e-6)


@pytest.mark.parametrize("name", ["fp", "bwn", "bibert", "bit", "binarybert_ternary", "binarybert"])
def test_presets_load(name):
    cfg = QuantConfig.from_preset(name)
    assert cfg.name == name
    assert name in available_presets()


def test_preset_bits():
    assert QuantConfig.from_preset("bibert").bits_str == "1-1-1"
    assert QuantConfig.from_preset("binarybert").bits_str == "1-1-4"
    assert QuantConfig.from_preset("fp").is_full_precision


def test_yaml_round_trip(tmp_path):
    cfg = QuantConfig.from_preset("bit")
    cfg.to_yaml(tmp_path / "q.yaml")
    assert QuantConfig.from_yaml(tmp_path / "q.yaml") == cfg
    assert QuantConfig.resolve(str(tmp_path / "q.yaml")) == cfg


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"weight_quantizer": "xnor", "weight_bits": 1}, r"xnor. is unknown; valid names: \[.*bibert"),
        ({"activation_bits": 3}, r"activation_bits=3 is invalid; valid values: \[1, 2, 4, 8, 32\]"),
        ({"weight_quantizer": "bibert", "weight_bits": 4}, r"'bibert' supports bits \[1\]"),
        ({"attention": "linear"}, r"valid values: \['quant', 'bi', 'bit'\]"),
        ({"typo_field": 1}, r"unknown QuantConfig field\(s\) \['typo_field'\]; valid fields"),
    ],
)
def test_invalid_config_lists_choices(bad, match, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("\n".join(f"{k}: {v}" for k, v in bad.items()))
    with pytest.raises(ValueError, match=match):
        QuantConfig.from_yaml(path)


def test_unknown_preset_lists_presets():
    with pytest.raises(ValueError, match="valid presets: .*bibert"):
        QuantConfig.from_preset("nope")
