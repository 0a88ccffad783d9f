"""Simulated (fake-quant) BiT student == packed native engine, to the bit.

BiT's quantizer decisions depend on float expressions: the sign bits of every LayerNorm output
(``sgn(y - beta)``), the probability levels ``1[(P - beta_p) / alpha_p >= 1/2]`` of the softmax of the
scores ``S = fl(dot_qk * cqk) + M``, the out-projection's ``sgn(fl(dot_pv * cpv) - beta)``. A value one
rounding error away from its threshold flips a bit and the flip propagates, so the student must
evaluate the engine's expressions in the engine's order (:class:`~paddle_binbert.quant.EngineLayerNorm`,
:func:`~paddle_binbert.quant.functional.engine_softmax`, :func:`~paddle_binbert.quant.functional.binary_matmul`).

- whole students (calibrated elastic scales, non-zero betas like a trained student's, ALL BIASES ZERO,
  untrained and after a few SGD steps): the last hidden state equals the engine's bit for bit at every
  real token (Paddle's own LayerNorm rounds differently in ~40% of the outputs: this failed before),
  the logits to 1e-5 (the pooler's tanh and the head are FP islands, not bit-exact), predictions equal;
- the attention alone, probed with the probability threshold placed exactly at one probability:
  the layer's context equals the kernel's (binbert_attention) at the threshold and one float32 step
  above it, which holds only if the probability, hence the scores, softmax and context, agree to the bit.
"""

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForSequenceClassification

from paddle_binbert import QuantConfig, engine, quantize_model
from paddle_binbert.export import pack_model
from paddle_binbert.format.packed import load_packed
from paddle_binbert.quant import EngineLayerNorm
from paddle_binbert.quant import functional as QF
from paddle_binbert.quant.calibration import calibrate
from paddle_binbert.quant.quantizers import ElasticQuantizer

from ..tiny import tiny_bert_config
from . import random_batch, require_isa, simulated_output, train_on_random_labels

#: padded batches (batch, sequence length, seed); tiny_bert_config has 40 positions
BATCHES = [(8, 16, 21), (4, 40, 22), (6, 7, 23), (16, 33, 24), (5, 25, 25)]
#: single sentences (no padding): lengths and seeds
SINGLE = [(1, 31), (2, 32), (9, 33), (17, 34), (40, 35)]


def _batches(n: int, seed: int, vocab: int):
    return [dict(zip(("input_ids", "token_type_ids"), random_batch(8, 12 + 3 * i, vocab, seed + i))) for i in range(n)]


def _train(model, steps: int = 6, seed: int = 300) -> None:
    """``steps`` SGD steps of cross-entropy on random labels."""
    train_on_random_labels(model, steps, seed, learning_rate=0.3)


def bit_student(trained: bool, seed: int = 0):
    """A tiny BiT student: elastic scales calibrated on random batches, betas perturbed to non-zero
    values (as training leaves them), optionally trained a few steps, then every bias set to 0."""
    paddle.seed(seed)
    model = BertForSequenceClassification(tiny_bert_config())
    quantize_model(model, QuantConfig.from_preset("bit"))
    assert calibrate(model, _batches(3, seed + 10, model.config.vocab_size)) > 0
    paddle.seed(seed + 1)
    for layer in model.sublayers():
        if isinstance(layer, ElasticQuantizer):
            spread = float(layer.alpha.numpy()[0]) * (0.15 if layer.signed else 0.1)
            layer.beta.set_value(paddle.randn(layer.beta.shape) * spread)
    if trained:
        before = {n: p.numpy().copy() for n, p in model.named_parameters()}
        _train(model)
        moved = [n for n, p in model.named_parameters() if not np.array_equal(p.numpy(), before[n])]
        assert any(n.endswith("weight") and "encoder.layers.0" in n for n in moved)
        assert any(n.endswith(".beta") for n in moved) and any(n.endswith(".alpha") for n in moved)
    for name, param in model.named_parameters():
        if name.endswith(".bias"):
            param.set_value(paddle.zeros_like(param))
    model.eval()
    return model


@pytest.fixture(scope="module", params=[False, True], ids=["untrained", "trained"])
def student_and_engine(request, tmp_path_factory):
    request.getfixturevalue("ops")  # skips where the C++ operators cannot be built
    student = bit_student(request.param)
    packed = load_packed(pack_model(student, tmp_path_factory.mktemp("bit_packed") / "packed"))
    assert not any(np.any(packed.tensors[k]) for k in packed.tensors if k.endswith(".bias"))
    assert all(np.any(packed.tensors[k]) for k in packed.tensors if k.endswith("_quantizer.beta"))
    return student, engine.load(packed, backend="native")


def _compare(student, eng, ids, types, what: str) -> None:
    logits, hidden = eng.forward(ids.numpy(), types.numpy())
    with paddle.no_grad():
        seq = student.bert(ids, token_type_ids=types)[0].numpy()
    real = ids.numpy() != 0  # random_batch pads with id 0 (the pad token)
    np.testing.assert_array_equal(hidden[real], seq[real], err_msg=f"{what}: last hidden state")
    ref = simulated_output(student, ids, types)
    for i in range(ids.shape[0]):
        np.testing.assert_allclose(logits[i], ref[i], rtol=1e-5, atol=1e-5, err_msg=f"{what}, row {i}")
    np.testing.assert_array_equal(logits.argmax(-1), ref.argmax(-1))


@pytest.mark.parametrize("batch,seq,seed", BATCHES)
def test_padded_batches_match_the_engine(student_and_engine, batch, seq, seed):
    student, eng = student_and_engine
    ids, types = random_batch(batch, seq, seed=seed)
    assert (ids.numpy() == 0).any()
    _compare(student, eng, ids, types, f"batch {batch}x{seq}")


@pytest.mark.parametrize("length,seed", SINGLE)
def test_single_sentences_match_the_engine(student_and_engine, length, seed):
    student, eng = student_and_engine
    ids, types = random_batch(1, length, seed=seed)
    _compare(student, eng, ids, types, f"sentence of {length} tokens")


def test_student_layer_norms_round_as_the_engine(student_and_engine):
    student, _ = student_and_engine
    norms = [student.bert.embeddings.layer_norm]
    norms += [getattr(layer, n) for layer in student.bert.encoder.layers for n in ("norm1", "norm2")]
    assert all(type(n) is EngineLayerNorm for n in norms)
    assert all(layer.self_attn.elastic_binary() for layer in student.bert.encoder.layers)


# ------------------------------------------------------------------------------ attention, probed


def _threshold_at(p: np.float32):
    """(alpha_p, beta_p) with 1[(P - beta_p) / alpha_p + 1/2 >= 1] = 1[P >= p] exactly for float32 P
    near p: alpha_p = 2^e (p in [2^e, 2^(e+1))), beta_p = p - 2^(e-1) (exact); P - beta_p is exact
    (Sterbenz) and the division by 2^e too, so u = 1/2 + (P - p) / 2^e and one float32 step of P moves
    u by 2^-23, which survives u + 1/2 (2^-23 > half an ulp of 1 from below)."""
    e = int(np.floor(np.log2(p)))
    alpha, beta = np.float32(2.0**e), np.float32(p - np.float32(2.0 ** (e - 1)))
    assert np.float32(beta + np.float32(2.0 ** (e - 1))) == p
    return alpha, beta


def test_attention_matches_the_kernel_at_probability_thresholds(ops):
    isa = require_isa("avx512")  # the model evaluates the AVX-512 kernel's softmax (portable: std::exp)
    student = bit_student(trained=False, seed=4)
    attn = student.bert.encoder.layers[0].self_attn
    hidden, heads = attn.embed_dim, attn.num_heads
    rng = np.random.default_rng(7)
    b, n = 3, 23
    x = paddle.to_tensor(rng.standard_normal([b, n, hidden]).astype(np.float32))
    key_mask = np.zeros([b, n], np.float32)
    key_mask[1, 15:] = np.float32(-1e4)
    key_mask[2, 4:] = np.float32(-1e4)
    mask4 = paddle.to_tensor(key_mask.reshape(b, 1, 1, n))
    seen = {}
    hooks = [getattr(attn, f"{p}_proj").register_forward_post_hook(
        lambda layer, inp, out, p=p: seen.__setitem__(p, out.numpy())) for p in ("q", "k", "v")]  # fmt: skip
    hooks.append(attn.out_proj.register_forward_pre_hook(lambda layer, inp: seen.__setitem__("ctx", inp[0].numpy())))
    attn.record = True
    with paddle.no_grad():
        attn(x, attn_mask=mask4)
        probs = QF.engine_softmax(attn.last_record.scores).numpy()  # what the layer quantizes
    attn.record = False
    al = {n: np.float32(getattr(attn, f"{n}_quantizer").alpha.numpy()[0]) for n in ("query", "key", "value")}
    cqk = np.float32(np.float32(al["query"] * np.float32((hidden // heads) ** -0.5)) * al["key"])  # layout.py's
    betas = [paddle.to_tensor(getattr(attn, f"{n}_quantizer").beta.numpy()) for n in ("query", "key", "value")]
    q, k, v = (paddle.to_tensor(seen[p]) for p in ("q", "k", "v"))
    real = key_mask > -1
    candidates = [(bb, h, i, j) for bb in range(b) for h in range(heads) for i in range(n) for j in range(n)
                  if real[bb, j] and real[bb, i] and probs[bb, h, i, j] > 1e-4]  # fmt: skip
    picks = [candidates[t] for t in rng.choice(len(candidates), 12, replace=False)]
    for pick in picks:
        p0 = probs[pick]
        for p in (p0, np.nextafter(p0, np.float32(1))):  # threshold at p0, then one float32 step above
            alpha, beta = _threshold_at(p)
            attn.prob_quantizer.alpha.set_value(paddle.to_tensor([alpha]))
            attn.prob_quantizer.beta.set_value(paddle.to_tensor([beta]))
            with paddle.no_grad():
                attn(x, attn_mask=mask4)
                level = attn.prob_quantizer(paddle.to_tensor(probs[pick].reshape([1]))).numpy()[0] != 0
            assert level == (p == p0)  # the probed probability sits exactly at the threshold
            cpv = np.float32(alpha * al["value"])
            ctx = ops.binbert_attention(q, k, v, paddle.to_tensor(key_mask), *betas, 1, heads, float(cqk),
                                        float(alpha), float(beta), float(cpv), True, isa, 1).numpy()  # fmt: skip
            np.testing.assert_array_equal(seen["ctx"], ctx, err_msg=f"probe {pick}, threshold {p!r}")
    for hook in hooks:
        hook.remove()


@pytest.mark.parametrize("preset", ["bibert", "bwn"])
def test_sign_students_hidden_states_match_the_engine(ops, tmp_path, preset):
    """The LayerNorms of every binarized student round as the engine's: BiBERT / BWN too (zero biases)."""
    paddle.seed(2)
    student = BertForSequenceClassification(tiny_bert_config())
    quantize_model(student, QuantConfig.from_preset(preset))
    for name, param in student.named_parameters():
        if name.endswith(".bias"):
            param.set_value(paddle.zeros_like(param))
    student.eval()
    eng = engine.load(load_packed(pack_model(student, tmp_path / "packed")), backend="native")
    for batch, seq, seed in BATCHES[:3] + [(1, 40, 35)]:
        ids, types = random_batch(batch, seq, seed=seed)
        _compare(student, eng, ids, types, f"{preset} {batch}x{seq}")
