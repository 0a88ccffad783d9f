"""BinaryBERT's half-width start: importance (against brute force), slicing, loading and the
TWS widening of a half-width ternary model (logits preserved)."""

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertConfig, BertForSequenceClassification, BertModel

from paddle_binbert import quantize_model
from paddle_binbert.splitting import SplitQuantLinear, split_ternary_model
from paddle_binbert.splitting.half_width import (
    HALF_WIDTH_CONFIG_KEY,
    apply_half_width_layout,
    halve_model,
    magnitude_importance,
    plan_width,
    select_units,
    taylor_importance,
    widen_by_split,
)
from tests.tiny import tiny_bert_config

VOCAB = 100


def tiny_model(seed=0, cls=BertForSequenceClassification, **overrides):
    paddle.seed(seed)
    model = cls(tiny_bert_config(vocab_size=VOCAB, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                 **overrides))
    model.eval()
    return model


def make_batches(n=2, size=3, seed=5):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        ids = rng.integers(1, VOCAB, size=(size, 10))
        ids[1, 6:] = 0
        out.append({"input_ids": paddle.to_tensor(ids), "labels": paddle.to_tensor(rng.integers(0, 3, size))})
    return out


def test_select_units():
    imp = np.array([[0.1, 0.9, 0.5, 0.5], [3.0, 2.0, 1.0, 0.0]])
    assert select_units(imp, 2) == [[1, 2], [0, 1]]  # tie 0.5/0.5 goes to the lower index
    with pytest.raises(ValueError):
        select_units(imp, 0)


def test_magnitude_importance_matches_numpy_and_halving_keeps_the_top_units():
    model = tiny_model()
    layers = model.bert.encoder.layers
    expected_h, expected_n = [], []
    for layer in layers:
        a = layer.self_attn
        w = {k: getattr(a, k).weight.numpy().astype(np.float64) for k in ("q_proj", "k_proj", "v_proj", "out_proj")}
        heads = []
        for h in range(4):
            s = slice(8 * h, 8 * h + 8)
            heads.append(sum((w[k][:, s] ** 2).sum() for k in ("q_proj", "k_proj", "v_proj"))
                         + (w["out_proj"][s, :] ** 2).sum())
        expected_h.append(heads)
        w1, w2 = layer.linear1.weight.numpy().astype(np.float64), layer.linear2.weight.numpy().astype(np.float64)
        expected_n.append([(w1[:, j] ** 2).sum() + (w2[j, :] ** 2).sum() for j in range(64)])
    head_imp, neuron_imp = magnitude_importance(model)
    np.testing.assert_allclose(head_imp, expected_h, rtol=1e-10)
    np.testing.assert_allclose(neuron_imp, expected_n, rtol=1e-10)

    halve_model(model)  # no data: magnitude
    info = getattr(model.config, HALF_WIDTH_CONFIG_KEY)
    for li, heads in enumerate(info["heads"]):
        top = sorted(np.argsort(-np.asarray(expected_h[li]))[:2].tolist())
        assert heads == top
    assert info["importance"] == "magnitude" and info["attention_head_size"] == 8


def _per_example_losses(model, batch, head_mask=None, neuron_mask=None):
    """Per-example CE with channel masks applied at the out_proj / linear2 inputs (finite differences)."""
    hooks = []
    for i, layer in enumerate(model.bert.encoder.layers):
        if head_mask is not None:
            m = paddle.to_tensor(np.repeat(head_mask[i], 8))
            hooks.append(layer.self_attn.out_proj.register_forward_pre_hook(lambda _l, x, m=m: (x[0] * m,)))
        if neuron_mask is not None:
            m2 = paddle.to_tensor(neuron_mask[i])
            hooks.append(layer.linear2.register_forward_pre_hook(lambda _l, x, m=m2: (x[0] * m,)))
    try:
        with paddle.no_grad():
            logits = model(batch["input_ids"])
        logp = paddle.nn.functional.log_softmax(logits).numpy()
    finally:
        for h in hooks:
            h.remove()
    return -logp[np.arange(len(logp)), batch["labels"].numpy()]


def test_taylor_importance_matches_finite_differences():
    paddle.set_default_dtype("float64")
    try:
        model = tiny_model(seed=3)
        batches = make_batches()
        head_imp, neuron_imp = taylor_importance(model, batches)
        eps = 1e-4
        n_layers, n_heads, n_inter = 2, 4, 64
        fd_heads, fd_neurons = np.zeros((n_layers, n_heads)), np.zeros((n_layers, n_inter))
        count = 0
        for batch in batches:
            count += batch["input_ids"].shape[0]
            for li in range(n_layers):
                for h in range(n_heads):
                    plus, minus = np.ones((n_layers, n_heads)), np.ones((n_layers, n_heads))
                    plus[li, h], minus[li, h] = 1 + eps, 1 - eps
                    g = (_per_example_losses(model, batch, head_mask=plus)
                         - _per_example_losses(model, batch, head_mask=minus)) / (2 * eps)
                    fd_heads[li, h] += np.abs(g).sum()
                for j in range(n_inter):
                    plus, minus = np.ones((n_layers, n_inter)), np.ones((n_layers, n_inter))
                    plus[li, j], minus[li, j] = 1 + eps, 1 - eps
                    g = (_per_example_losses(model, batch, neuron_mask=plus)
                         - _per_example_losses(model, batch, neuron_mask=minus)) / (2 * eps)
                    fd_neurons[li, j] += np.abs(g).sum()
        np.testing.assert_allclose(head_imp, fd_heads / count, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(neuron_imp, fd_neurons / count, rtol=1e-5, atol=1e-9)
        assert all(p.grad is None for p in model.parameters())  # parameter gradients untouched

        plan = plan_width(model, batches=batches)
        assert plan.method == "taylor"
        assert plan.heads == select_units(fd_heads, 2) and plan.neurons == select_units(fd_neurons, 32)
    finally:
        paddle.set_default_dtype("float32")


def _mask_hooks(model, plan):
    hooks = []
    for i, layer in enumerate(model.bert.encoder.layers):
        hm = np.zeros(32, dtype="float32")
        for h in plan.heads[i]:
            hm[8 * h : 8 * h + 8] = 1
        nm = np.zeros(64, dtype="float32")
        nm[plan.neurons[i]] = 1
        hm_t, nm_t = paddle.to_tensor(hm), paddle.to_tensor(nm)
        hooks.append(layer.self_attn.out_proj.register_forward_pre_hook(lambda _l, x, m=hm_t: (x[0] * m,)))
        hooks.append(layer.linear2.register_forward_pre_hook(lambda _l, x, m=nm_t: (x[0] * m,)))
    return hooks


def test_halved_model_equals_the_masked_full_model_and_has_half_the_parameters(tmp_path):
    model = tiny_model(seed=1)
    ids = make_batches(1)[0]["input_ids"]
    plan = plan_width(model, batches=make_batches())
    hooks = _mask_hooks(model, plan)
    with paddle.no_grad():
        masked = model(ids).numpy()
    for h in hooks:
        h.remove()

    def width_params(m):
        return sum(int(np.prod(p.shape)) for n, p in m.named_parameters()
                   if any(k in n for k in ("q_proj", "k_proj", "v_proj", "out_proj", "linear1", "linear2"))
                   and not n.endswith("out_proj.bias") and not n.endswith("linear2.bias"))

    full = width_params(model)
    halve_model(model, batches=make_batches())
    assert width_params(model) * 2 == full
    assert model.config.num_attention_heads == 2 and model.config.intermediate_size == 32
    for layer in model.bert.encoder.layers:
        assert layer.self_attn.num_heads == 2 and layer.self_attn.head_dim == 8
        assert layer.self_attn.q_proj.weight.shape == [32, 16] and layer.linear2.weight.shape == [32, 32]
    with paddle.no_grad():
        halved = model(ids).numpy()
    np.testing.assert_allclose(halved, masked, rtol=1e-5, atol=1e-5)

    # save and rebuild from the config alone
    model.save_pretrained(str(tmp_path))
    config = BertConfig.from_pretrained(str(tmp_path))
    rebuilt = apply_half_width_layout(BertForSequenceClassification(config))
    state = paddle.load(str(tmp_path / "model_state.pdparams"))
    assert set(state) == set(rebuilt.state_dict())
    assert all(list(state[k].shape) == list(v.shape) for k, v in rebuilt.state_dict().items())
    rebuilt.set_state_dict(state)
    rebuilt.eval()
    with paddle.no_grad():
        np.testing.assert_allclose(rebuilt(ids).numpy(), halved, rtol=1e-6, atol=1e-6)


def test_keep_everything_is_the_identity_and_bert_model_needs_a_loss():
    model = tiny_model(seed=2)
    ids = make_batches(1)[0]["input_ids"]
    with paddle.no_grad():
        before = model(ids).numpy()
    halve_model(model, importance="magnitude", keep_ratio=1.0)
    with paddle.no_grad():
        np.testing.assert_allclose(model(ids).numpy(), before, rtol=1e-6, atol=1e-6)

    bare = tiny_model(cls=BertModel)
    with pytest.raises(ValueError, match="loss_fn"):
        halve_model(bare, batches=make_batches())
    halve_model(bare, batches=make_batches(), loss_fn=lambda m, b: (m(b["input_ids"])[0] ** 2).sum())
    assert bare.config.num_attention_heads == 2
    with pytest.raises(ValueError, match="needs batches"):
        plan_width(tiny_model(), importance="taylor")
    with pytest.raises(ValueError, match="do not match"):
        plan_width(tiny_model(), importance=(np.ones((2, 3)), np.ones((2, 64))))


def _calibrated_ternary(model, ids):
    quantize_model(model, "binarybert_ternary")
    model.train()
    model(ids)  # first batch initialises the LSQ steps
    model.eval()
    return model


def test_widen_by_split_gives_the_half_width_ternary_logits():
    ids = make_batches(1)[0]["input_ids"]
    full = _calibrated_ternary(tiny_model(seed=4), ids)
    half = tiny_model(seed=4)
    halve_model(half, batches=make_batches())
    _calibrated_ternary(half, ids)
    with paddle.no_grad():
        ternary_logits = half(ids).numpy()
    assert widen_by_split(half) is half
    with paddle.no_grad():
        binary_logits = half(ids).numpy()
    np.testing.assert_allclose(binary_logits, ternary_logits, rtol=0, atol=1e-5)
    assert getattr(half.config, HALF_WIDTH_CONFIG_KEY)["widened"] is True

    # the split half-width encoder has exactly the binary weight count of the full-width one
    def encoder_binary_weights(m):
        total = 0
        for layer in m.bert.encoder.sublayers():
            if isinstance(layer, SplitQuantLinear):
                total += 2 * int(np.prod(layer.weight1.shape))
            elif hasattr(layer, "weight_quantizer") and layer.weight_quantizer is not None:
                total += int(np.prod(layer.weight.shape))
        return total

    assert encoder_binary_weights(half) == encoder_binary_weights(full)


def test_halving_a_quantized_model_slices_the_activation_quantizers():
    ids = make_batches(1)[0]["input_ids"]
    model = quantize_model(tiny_model(seed=6), "bit")
    model.train()
    model(ids)
    model.eval()
    layer0 = model.bert.encoder.layers[0]
    beta_q = layer0.self_attn.query_quantizer.beta.numpy().copy()
    beta_ffn2 = layer0.linear2.input_quantizer.beta.numpy().copy()
    halve_model(model)
    plan_heads = getattr(model.config, HALF_WIDTH_CONFIG_KEY)["heads"][0]
    channels = np.concatenate([np.arange(8 * h, 8 * h + 8) for h in plan_heads])
    np.testing.assert_array_equal(layer0.self_attn.query_quantizer.beta.numpy(), beta_q[channels])
    assert layer0.linear2.input_quantizer.beta.shape == [32] and beta_ffn2.shape == (64,)
    assert layer0.self_attn.embed_dim == 16
    with paddle.no_grad():
        assert np.all(np.isfinite(model(ids).numpy()))
    with pytest.raises(ValueError, match="not quantized"):
        widen_by_split(tiny_model())


def test_split_models_cannot_be_halved():
    ids = make_batches(1)[0]["input_ids"]
    model = _calibrated_ternary(tiny_model(seed=7), ids)
    split_ternary_model(model)
    with pytest.raises(ValueError, match="already split"):
        halve_model(model)
