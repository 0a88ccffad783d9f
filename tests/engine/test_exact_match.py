"""Simulated (fake-quant) student == packed engine, with exact ties.

A binary linear's pre-activation ``y_j = alpha_j * dot_j + b_j`` is exactly 0 whenever ``dot_j = 0``
and ``b_j = 0``. The engine's integer popcount gives that 0 (and ``sgn(0) = +1``); the simulated
student must too, or the flipped bit propagates. So these students keep ALL BIASES AT ZERO (the
other engine tests randomise them to avoid exactly these ties): an untrained tiny BiBERT student, and
one trained for a few SGD steps on random labels (weights away from their initialisation); the
same for the BWN baseline (one weight scale per matrix). The logits must agree on every example
(rtol = atol = 1e-5) and give the same predictions.
"""

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForSequenceClassification

from paddle_binbert import QuantConfig, engine, quantize_model
from paddle_binbert.export import pack_model
from paddle_binbert.format.packed import load_packed

from ..tiny import tiny_bert_config
from . import engine_output, random_batch, simulated_output, train_on_random_labels

#: (batch, sequence length, seed) of the compared batches; tiny_bert_config has 40 positions
BATCHES = [(8, 16, 11), (4, 40, 12), (6, 7, 13), (1, 1, 14), (5, 25, 15)]


def _zero_biases(model) -> None:
    """Every ``*.bias`` parameter (linears, LayerNorms, classifier) set to 0."""
    for name, param in model.named_parameters():
        if name.endswith(".bias"):
            param.set_value(paddle.zeros_like(param))


def _train(model, steps: int = 20, seed: int = 100) -> None:
    """``steps`` SGD steps of cross-entropy on random labels (random ids, lengths and padding)."""
    train_on_random_labels(model, steps, seed, learning_rate=0.5)


def _student(trained: bool, preset: str = "bibert", seed: int = 0):
    paddle.seed(seed)
    model = BertForSequenceClassification(tiny_bert_config())
    quantize_model(model, QuantConfig.from_preset(preset))
    if trained:
        initial = {n: p.numpy().copy() for n, p in model.named_parameters()}
        _train(model)
        moved = [
            n
            for n, p in model.named_parameters()
            if n.endswith(".weight") and not np.array_equal(p.numpy(), initial[n])
        ]
        assert any("encoder.layers.0" in n for n in moved)  # the binary weights did move
    _zero_biases(model)
    model.eval()
    return model


def max_logit_gap(student, eng) -> float:
    """max |engine - simulated| over the compared batches."""
    gap = 0.0
    for batch, seq, seed in BATCHES:
        ids, types = random_batch(batch, seq, seed=seed)
        gap = max(gap, float(np.abs(engine_output(eng, ids, types) - simulated_output(student, ids, types)).max()))
    return gap


def _load(packed, backend: str, request):
    if backend == "native":
        request.getfixturevalue("ops")  # skips where the C++ operators cannot be built
    return engine.load(packed, backend=backend)


@pytest.mark.parametrize("backend", ["native", "simulated"])
@pytest.mark.parametrize("trained", [False, True], ids=["untrained", "trained"])
@pytest.mark.parametrize("preset", ["bibert", "bwn"])  # per-channel / one weight scale; bool / all-ones attention
def test_zero_bias_student_matches_engine(tmp_path, request, preset, backend, trained):
    student = _student(trained, preset)
    packed = load_packed(pack_model(student, tmp_path / "packed"))
    assert not any(np.any(packed.tensors[k]) for k in packed.tensors if k.endswith(".bias"))
    eng = _load(packed, backend, request)
    for batch, seq, seed in BATCHES:
        ids, types = random_batch(batch, seq, seed=seed)
        got, ref = engine_output(eng, ids, types), simulated_output(student, ids, types)
        for i in range(batch):  # every example
            np.testing.assert_allclose(got[i], ref[i], rtol=1e-5, atol=1e-5, err_msg=f"batch {batch}x{seq}, row {i}")
        np.testing.assert_array_equal(got.argmax(axis=-1), ref.argmax(axis=-1))
