"""BertAdam against its formula: no bias correction, eps 1e-6, per-tensor clipping, decoupled decay."""

import numpy as np
import paddle
import pytest

from paddle_binbert.train import BertAdam
from paddle_binbert.train.trainer import stable_parameter_names


def _np_bertadam(p, grads, lr, b1=0.9, b2=0.999, eps=1e-6, wd=0.0, max_norm=1.0):
    m, v = np.zeros_like(p), np.zeros_like(p)
    for g in grads:
        norm = np.sqrt((g * g).sum())
        if max_norm > 0:
            g = g * min(1.0, max_norm / (norm + 1e-6))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (np.sqrt(v) + eps) + wd * p)
    return p


def _layer(seed=0):
    paddle.seed(seed)
    layer = paddle.nn.Linear(4, 3)
    stable_parameter_names(layer)  # as the trainer does, so that saved moments find their parameters
    return layer


def _grads(steps, scale):
    rng = np.random.default_rng(1)
    return [(rng.normal(size=(4, 3)) * scale).astype("float32") for _ in range(steps)]


@pytest.mark.parametrize("scale, max_norm, wd", [(0.01, 1.0, 0.0), (10.0, 1.0, 0.01), (10.0, 0.0, 0.0)])
def test_bertadam_matches_its_formula(scale, max_norm, wd):
    layer = _layer()
    w0 = layer.weight.numpy().astype("float64")
    grads = _grads(3, scale)
    opt = BertAdam(
        0.05,
        [layer.weight],
        weight_decay=wd,
        max_grad_norm=max_norm,
        apply_decay_param_fun=lambda name: name == layer.weight.name,
    )
    for g in grads:
        layer.weight.grad = None
        (layer.weight * paddle.to_tensor(g)).sum().backward()
        opt.step()
        opt.clear_grad()
    want = _np_bertadam(w0, [g.astype("float64") for g in grads], 0.05, wd=wd, max_norm=max_norm)
    np.testing.assert_allclose(layer.weight.numpy(), want, rtol=1e-5, atol=1e-6)


def test_first_step_is_larger_than_adams():
    """No bias correction: step 1 moves by lr * g/(sqrt(0.001) |g|) ~ 3.16 lr, Adam's by lr."""
    layer = _layer()
    before = layer.weight.numpy().copy()
    opt = BertAdam(0.01, [layer.weight], weight_decay=0.0, max_grad_norm=0.0)
    layer.weight.sum().backward()
    opt.step()
    np.testing.assert_allclose(np.abs(layer.weight.numpy() - before), 0.01 * 0.1 / (0.001**0.5 + 1e-6), rtol=1e-4)


def test_state_dict_round_trip_resumes_identically():
    """Two steps, save, a new process loads and takes two more == four steps in one go (the trainer
    names parameters stably and creates the optimizer state inside a fresh unique-name guard)."""
    grads = _grads(4, 1.0)

    def steps(layer, opt, gs):
        with paddle.utils.unique_name.guard():
            for g in gs:
                (layer.weight * paddle.to_tensor(g)).sum().backward()
                opt.step()
                opt.clear_grad()

    layer = _layer()
    steps(layer, BertAdam(0.02, layer.parameters()), grads)
    uninterrupted = layer.weight.numpy()

    layer = _layer()
    opt = BertAdam(0.02, layer.parameters())
    steps(layer, opt, grads[:2])
    state = {k: v.numpy().copy() for k, v in opt.state_dict().items() if hasattr(v, "numpy")}
    weights = {k: v.numpy().copy() for k, v in layer.state_dict().items()}
    layer = _layer(seed=5)  # other initial values, then the checkpoint
    layer.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    opt = BertAdam(0.02, layer.parameters())
    opt.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    steps(layer, opt, grads[2:])
    np.testing.assert_array_equal(layer.weight.numpy(), uninterrupted)


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="beta1"):
        BertAdam(0.1, _layer().parameters(), beta1=1.0)
    with pytest.raises(ValueError, match="epsilon"):
        BertAdam(0.1, _layer().parameters(), epsilon=0.0)
