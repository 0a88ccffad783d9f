"""Distillation losses against independent numpy implementations; gradients; layer map; recipes."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddle_binbert.distill import losses as L

RNG = np.random.default_rng(0)


def _t(a: np.ndarray, grad: bool = True) -> paddle.Tensor:
    x = paddle.to_tensor(a)
    x.stop_gradient = not grad
    return x


def _np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _np_sce(zs: np.ndarray, zt: np.ndarray, temp: float) -> float:
    """The releases' SCE: mean over batch and classes."""
    pt = np.exp(_np_log_softmax(zt / temp))
    return float((-(pt * _np_log_softmax(zs / temp))).mean())


def _np_mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a - b) ** 2).mean())


def _np_dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a / np.sqrt((a**2).sum()) - b / np.sqrt((b**2).sum())) ** 2).sum()))


def _np_sim(f: np.ndarray, heads: int) -> np.ndarray:
    b, n, h = f.shape
    x = f.reshape(b, n, heads, h // heads).transpose(0, 2, 1, 3)
    return x @ x.transpose(0, 1, 3, 2) / np.sqrt(h // heads)


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype("float32")


def _masked_scores(b: int = 2, h: int = 2, n: int = 5) -> np.ndarray:
    s = _rand(b, h, n, n)
    s[0, :, :, -2:] += -1e4  # padded keys of the first example
    return s


@pytest.mark.parametrize("temp", [1.0, 2.5])
def test_soft_cross_entropy(temp: float) -> None:
    zs, zt = _rand(4, 3) * 3, _rand(4, 3) * 3
    got = L.soft_cross_entropy(_t(zs), _t(zt), temp).item()
    assert got == pytest.approx(_np_sce(zs, zt, temp), rel=1e-5)
    # sum over classes: the per-example cross-entropy, 3 classes -> 3x the releases' mean
    summed = L.soft_cross_entropy(_t(zs), _t(zt), temp, sum_classes=True).item()
    assert summed == pytest.approx(3 * _np_sce(zs, zt, temp), rel=1e-5)
    with pytest.raises(ValueError):
        L.soft_cross_entropy(_t(zs), _t(zt), 0.0)


def test_prediction_and_hard_label_losses() -> None:
    zs, zt = _rand(4, 3), _rand(4, 3)
    assert L.prediction_loss(_t(zs), _t(zt), 2.0, False).item() == pytest.approx(_np_sce(zs, zt, 2.0), rel=1e-5)
    rs, rt = _rand(4, 1), _rand(4)
    assert L.prediction_loss(_t(rs), _t(rt), 2.0, True).item() == pytest.approx(_np_mse(rs[:, 0], rt), rel=1e-5)
    y = np.array([0, 2, 1, 2], dtype="int64")
    ce = float(-_np_log_softmax(zs)[np.arange(4), y].mean())
    assert L.hard_label_loss(_t(zs), _t(y, grad=False), False).item() == pytest.approx(ce, rel=1e-5)
    yr = _rand(4)
    assert L.hard_label_loss(_t(rs), _t(yr, grad=False), True).item() == pytest.approx(_np_mse(rs[:, 0], yr), rel=1e-5)


def test_attention_mse_masks_padding() -> None:
    ss, st = _masked_scores(), _masked_scores()
    st[1, :, :, -1:] = -np.inf  # an additive -inf mask is also dropped
    ref = _np_mse(np.where(ss <= -100, 0, ss), np.where(st <= -100, 0, st))
    got = L.attention_mse(_t(ss), _t(st)).item()
    assert got == pytest.approx(ref, rel=1e-5)
    assert got < 10  # the -1e4 entries did not leak into the loss


def test_hidden_mse_and_fit_dense() -> None:
    hs, ht = _rand(2, 5, 4), _rand(2, 5, 6)
    fit = paddle.nn.Linear(4, 6)
    ref = _np_mse(hs @ fit.weight.numpy() + fit.bias.numpy(), ht)
    assert L.hidden_mse(_t(hs), _t(ht), fit).item() == pytest.approx(ref, rel=1e-5)
    assert L.hidden_mse(_t(hs), _t(hs * 2)).item() == pytest.approx(_np_mse(hs, 2 * hs), rel=1e-5)


def test_normalized_distance() -> None:
    a, b = _rand(2, 3, 4), _rand(2, 3, 4)
    assert L.normalized_distance(_t(a), _t(b)).item() == pytest.approx(_np_dist(a, b), rel=1e-5)
    # scale invariant, zero for identical directions, finite gradient there
    assert L.normalized_distance(_t(a * 7), _t(b)).item() == pytest.approx(_np_dist(a, b), rel=1e-5)
    x = _t(a)
    d = L.normalized_distance(x, _t(a * 3, grad=False))
    d.backward()
    assert d.item() == pytest.approx(0.0, abs=1e-5)
    assert np.isfinite(x.grad.numpy()).all()


def test_direction_matching_loss() -> None:
    fs, ft = _rand(2, 5, 8), _rand(2, 5, 12)  # different widths, same head count
    ref = _np_dist(_np_sim(fs, 4), _np_sim(ft, 4))
    assert L.direction_matching_loss(_t(fs), _t(ft), 4).item() == pytest.approx(ref, rel=1e-4)
    np.testing.assert_allclose(L.similarity_matrix(_t(fs), 4).numpy(), _np_sim(fs, 4), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "fn,args",
    [
        (L.soft_cross_entropy, ((4, 3), (4, 3))),
        (L.attention_mse, ((2, 2, 5, 5), (2, 2, 5, 5))),
        (L.hidden_mse, ((2, 5, 4), (2, 5, 4))),
        (L.normalized_distance, ((2, 5, 4), (2, 5, 4))),
        (lambda s, t: L.direction_matching_loss(s, t, 2), ((2, 5, 4), (2, 5, 4))),
    ],
)
def test_gradients_reach_student_only(fn, args) -> None:
    s, t = _t(_rand(*args[0])), _t(_rand(*args[1]))
    fn(s, t).backward()
    assert s.grad is not None and float(np.abs(s.grad.numpy()).sum()) > 0
    assert t.grad is None


def test_layer_map() -> None:
    assert L.layer_map(6, 6) == [0, 1, 2, 3, 4, 5, 6]
    assert L.layer_map(3, 6) == [0, 2, 4, 6]  # 6-layer teacher -> 3-layer student
    assert L.layer_map(4, 12) == [0, 3, 6, 9, 12]
    for bad in ((5, 12), (6, 3), (0, 12)):
        with pytest.raises(ValueError):
            L.layer_map(*bad)


def _outputs(layers: int, hidden: int, heads: int = 2, b: int = 2, n: int = 4, grad: bool = True) -> L.DistillOutputs:
    def mk(*shape: int) -> paddle.Tensor:
        return _t(_rand(*shape), grad)

    return L.DistillOutputs(
        logits=mk(b, 3),
        hidden_states=[mk(b, n, hidden) for _ in range(layers + 1)],
        scores=[_t(_masked_scores(b, heads, n), grad) for _ in range(layers)],
        queries=[mk(b, n, hidden) for _ in range(layers)],
        keys=[mk(b, n, hidden) for _ in range(layers)],
        values=[mk(b, n, hidden) for _ in range(layers)],
    )


RECIPES = {
    "tinybert_intermediate": L.DistillLossConfig.tinybert_intermediate(),
    "tinybert_pred": L.DistillLossConfig.tinybert_pred(2.0),
    "bibert": L.DistillLossConfig.bibert(),
    "bit": L.DistillLossConfig.bit(),
    "binarybert_stage1": L.DistillLossConfig.binarybert_stage1(),
    "binarybert_stage2": L.DistillLossConfig.binarybert_stage2(),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_total_is_weighted_sum(name: str) -> None:
    cfg = RECIPES[name]
    stu, tea = _outputs(2, 4), _outputs(4, 4, grad=False)  # 4-layer teacher -> 2-layer student
    labels = _t(np.array([0, 2], dtype="int64"), grad=False)
    total, report = L.compute_distill_loss(cfg, stu, tea, labels, False, num_heads=2)
    weights = cfg.weights()
    assert set(report) == set(weights) | {"total"}
    assert report["total"] == pytest.approx(sum(weights[k] * report[k] for k in weights), rel=1e-5)
    assert total.item() == pytest.approx(report["total"], rel=1e-6)
    total.backward()
    assert stu.logits.grad is not None or "pred" not in weights


def test_recipe_terms_match_numpy() -> None:
    stu, tea = _outputs(2, 4), _outputs(4, 4)
    labels = np.array([1, 0], dtype="int64")
    cfg = L.DistillLossConfig(
        pred=1, hard_label=0.5, att_mse=2, hid_mse=3, hid_distance=1, query=1, key=0.5, value=0.25, temperature=2.0
    )
    _, rep = L.compute_distill_loss(cfg, stu, tea, _t(labels, grad=False), False, num_heads=2)
    n = lambda x: x.numpy()  # noqa: E731
    zs, zt = n(stu.logits), n(tea.logits)
    assert rep["pred"] == pytest.approx(_np_sce(zs, zt, 2.0), rel=1e-5)
    assert rep["hard_label"] == pytest.approx(float(-_np_log_softmax(zs)[[0, 1], labels].mean()), rel=1e-5)
    unmask = lambda a: np.where(a <= -100, 0, a)  # noqa: E731
    att = sum(_np_mse(unmask(n(stu.scores[i])), unmask(n(tea.scores[j]))) for i, j in ((0, 1), (1, 3)))
    assert rep["att_mse"] == pytest.approx(att, rel=1e-5)
    pairs = ((0, 0), (1, 2), (2, 4))
    hid = sum(_np_mse(n(stu.hidden_states[i]), n(tea.hidden_states[j])) for i, j in pairs)
    assert rep["hid_mse"] == pytest.approx(hid, rel=1e-5)
    dist = sum(_np_dist(n(stu.hidden_states[i]), n(tea.hidden_states[j])) for i, j in pairs)
    assert rep["hid_distance"] == pytest.approx(dist, rel=1e-5)
    for term, attr in (("query", "queries"), ("key", "keys"), ("value", "values")):
        s_list, t_list = getattr(stu, attr), getattr(tea, attr)
        ref = sum(_np_dist(_np_sim(n(s_list[i]), 2), _np_sim(n(t_list[j]), 2)) for i, j in ((0, 1), (1, 3)))
        assert rep[term] == pytest.approx(ref, rel=1e-4)
    weights = cfg.weights()
    assert rep["total"] == pytest.approx(sum(weights[k] * rep[k] for k in weights), rel=1e-5)


def test_regression_fit_dense_and_errors() -> None:
    stu, tea = _outputs(2, 4), _outputs(2, 6, grad=False)
    stu.logits, tea.logits = _t(_rand(2, 1)), _t(_rand(2, 1), grad=False)
    fit = paddle.nn.Linear(4, 6)
    cfg = L.DistillLossConfig.bit()
    labels = _t(_rand(2), grad=False)
    total, rep = L.compute_distill_loss(cfg, stu, tea, labels, True, num_heads=2, fit_dense=fit)
    assert rep["pred"] == pytest.approx(_np_mse(stu.logits.numpy(), tea.logits.numpy()), rel=1e-5)
    total.backward()
    assert fit.weight.grad is not None
    with pytest.raises(ValueError):
        L.compute_distill_loss(L.DistillLossConfig(), stu, tea, labels, True)
    with pytest.raises(ValueError):
        L.compute_distill_loss(L.DistillLossConfig(att_mse=1), L.DistillOutputs(stu.logits), tea)
    with pytest.raises(ValueError):
        L.DistillLossConfig.bibert().with_overrides(nonsense=1.0)
    assert L.DistillLossConfig.bibert().with_overrides(hard_label=0).weights().get("hard_label") is None
    assert L.DistillLossConfig.binarybert_stage1().lr_multiplier == 2.5
