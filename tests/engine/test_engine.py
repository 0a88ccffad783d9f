"""The binary engine: kernels against numpy (every ISA the CPU has), and the packed model's logits
against the simulated (fake-quant) student's, for the bibert / bit / bwn presets."""

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification

from paddle_binbert import engine
from paddle_binbert.engine import ops as engine_ops
from paddle_binbert.export import pack_model, round_fp_islands
from paddle_binbert.format.packed import load_packed, pack_bits, unpack_bits

from . import (
    ISAS,
    PRESETS,
    engine_output,
    make_student,
    random_batch,
    rel_err,
    require_isa,
    simulated_output,
    tiny_config,
)


def _t(a):
    return paddle.to_tensor(np.ascontiguousarray(a))


# ------------------------------------------------------------------------------------- numpy references
def np_quant_bits(x, beta=None, act=0, quant=0, qalpha=1.0):
    """The activation quantizers in float32 numpy: sgn(v - beta) (ties +1) or 1[clip(u,0,1) + 1/2 >= 1]."""
    v = x.astype(np.float32)
    if act == 1:
        v = np.where(v > 0, v, np.float32(0))
    elif act == 2:
        return F.gelu(paddle.to_tensor(v)).numpy() >= 0
    s = v - (np.float32(0) if beta is None else beta.astype(np.float32))
    if quant == 0:
        return s >= 0
    c = np.clip(s / np.float32(qalpha), np.float32(0), np.float32(1))
    return (c + np.float32(0.5)) >= np.float32(1)


def np_linear(xbits, wbits, alpha, bias, mode):
    """y = alpha * dot + bias, dot over +-1 (mode 0) or {0,1} x +-1 (mode 1), float32 like the kernel."""
    w = np.where(wbits, 1, -1).astype(np.int64)
    x = np.where(xbits, 1, -1).astype(np.int64) if mode == 0 else xbits.astype(np.int64)
    dot = x @ w.T
    return alpha[None, :] * dot.astype(np.float32) + bias[None, :]


def _split(x, heads):
    b, n, h = x.shape
    return x.reshape(b, n, heads, h // heads).transpose(0, 2, 1, 3)


# ------------------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("isa", list(ISAS))
@pytest.mark.parametrize("k", [1, 48, 64, 100, 130, 768])
def test_pack_kernel(ops, isa, k):
    code = require_isa(isa)
    rng = np.random.default_rng(k)
    x = rng.standard_normal((9, k)).astype(np.float32) * 3
    x[0, : min(k, 4)] = np.float32([0.0, -0.0, -5.5546556, -5.554655])[: min(k, 4)]  # ties, the GELU threshold
    beta = (rng.standard_normal(k) * 0.3).astype(np.float32)
    thr = engine.gelu_sign_threshold()
    cases = [(None, 0, 0, 1.0), (beta, 0, 0, 1.0), (beta, 1, 1, 1.7), (beta, 0, 1, 0.9), (None, 2, 0, 1.0)]
    for b, act, quant, qa in cases:
        bits, pop = ops.binbert_pack(
            _t(x), _t(beta if b is not None else np.zeros(k, np.float32)), act, quant, qa, thr, b is not None, code, 2
        )
        ref = np_quant_bits(x, b, act, quant, qa)
        assert bits.shape == [9, (k + 63) // 64]
        np.testing.assert_array_equal(bits.numpy().view(np.uint64), pack_bits(ref), err_msg=f"{act}/{quant}")
        np.testing.assert_array_equal(pop.numpy(), ref.sum(axis=1))


@pytest.mark.parametrize("isa", list(ISAS))
@pytest.mark.parametrize("mode", [0, 1])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (5, 50, 63), (7, 97, 130), (4, 48, 64), (9, 200, 700), (33, 96, 1000)])
def test_binary_gemm_exact(ops, isa, mode, m, n, k):
    code = require_isa(isa)
    rng = np.random.default_rng(m * 1000 + n + k)
    xbits = rng.random((m, k)) < 0.5
    wbits = rng.random((n, k)) < 0.5
    alpha = (rng.random(n) + 0.5).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    pop = _t(xbits.sum(axis=1).astype(np.int32))
    panels = _t(engine.weight_panels(pack_bits(wbits)))
    y = ops.binbert_gemm(_t(pack_bits(xbits).view(np.int64)), pop, panels, _t(alpha), _t(bias), k, mode, code, 2)
    np.testing.assert_array_equal(y.numpy(), np_linear(xbits, wbits, alpha, bias, mode))


@pytest.mark.parametrize("isa", list(ISAS))
@pytest.mark.parametrize("n", [40, 48, 100, 200])
def test_linear_and_quantized_output(ops, isa, n):
    """binbert_linear (activation packed on the fly) and binbert_gemm_q (output quantized on the fly)."""
    code = require_isa(isa)
    k, m = 130, 11
    rng = np.random.default_rng(n)
    x = rng.standard_normal((m, k)).astype(np.float32)
    beta = (rng.standard_normal(k) * 0.2).astype(np.float32)
    wbits = rng.random((n, k)) < 0.5
    alpha = (rng.random(n) * 0.1 + 0.01).astype(np.float32)
    bias = (rng.standard_normal(n) * 0.3).astype(np.float32)
    panels = _t(engine.weight_panels(pack_bits(wbits)))
    thr = engine.gelu_sign_threshold()
    for act, quant, qa in [(0, 0, 1.0), (1, 1, 0.8), (0, 1, 1.3)]:
        y = ops.binbert_linear(_t(x), _t(beta), panels, _t(alpha), _t(bias), act, quant, qa, thr, True, code, 2)
        xb = np_quant_bits(x, beta, act, quant, qa)
        np.testing.assert_array_equal(y.numpy(), np_linear(xb, wbits, alpha, bias, quant))
    xb = rng.random((m, k)) < 0.5
    qbeta = (rng.standard_normal(n) * 0.05).astype(np.float32)
    bias[:3] = -np_linear(xb, wbits, alpha, np.zeros(n, np.float32), 0)[0, :3]  # exact zeros (sign ties) in row 0
    y = np_linear(xb, wbits, alpha, bias, 0)
    assert not y[0, :3].any()
    for act, quant, qa, use_qbeta in [(2, 0, 1.0, False), (0, 0, 1.0, True), (1, 1, 0.4, True), (1, 0, 1.0, False)]:
        bits, pop = ops.binbert_gemm_q(
            _t(pack_bits(xb).view(np.int64)),
            _t(np.zeros(m, np.int32)),
            panels,
            _t(alpha),
            _t(bias),
            _t(qbeta),
            k,
            0,
            act,
            quant,
            qa,
            thr,
            use_qbeta,
            code,
            2,
        )
        ref = np_quant_bits(y, qbeta if use_qbeta else None, act, quant, qa)
        np.testing.assert_array_equal(unpack_bits(bits.numpy().view(np.uint64), n), ref, err_msg=f"{act}/{quant}")
        np.testing.assert_array_equal(pop.numpy(), ref.sum(axis=1))


@pytest.mark.parametrize("isa", list(ISAS))
@pytest.mark.parametrize("b,seq,h,heads", [(2, 12, 48, 4), (1, 1, 64, 4), (2, 70, 128, 2), (1, 130, 24, 1)])
def test_bool_and_ones_attention(ops, isa, b, seq, h, heads):
    code = require_isa(isa)
    d = h // heads
    rng = np.random.default_rng(seq + h)
    q, k, v = (rng.standard_normal((b, seq, h)).astype(np.float32) for _ in range(3))
    q[0, 0, :3] = 0.0  # sign ties
    mask = np.zeros((b, seq), np.float32)
    if b > 1:
        mask[1, seq // 2 :] = -1e4
    sq, sk, sv = (_split(np.where(a >= 0, 1.0, -1.0), heads) for a in (q, k, v))
    scale = np.float32(d**-0.5)
    scores = (sq @ sk.transpose(0, 1, 3, 2)).astype(np.float32) * scale + mask[:, None, None, :]
    ref = ((scores > 0).astype(np.float64) @ sv).transpose(0, 2, 1, 3).reshape(b, seq, h)
    z = paddle.zeros([h])
    out = ops.binbert_attention(
        _t(q), _t(k), _t(v), _t(mask), z, z, z, 0, heads, float(scale), 1.0, 0.0, 1.0, False, code, 2
    )
    np.testing.assert_array_equal(out.numpy(), ref)
    real = (mask > -1)[:, None, :, None]  # padded keys contribute nothing (specs/attention.md)
    ones = (sv * real).sum(axis=2, keepdims=True)
    ones = np.broadcast_to(ones, sv.shape).transpose(0, 2, 1, 3).reshape(b, seq, h)
    out = ops.binbert_attention(_t(q), _t(k), _t(v), _t(mask), z, z, z, 2, heads, 1.0, 1.0, 0.0, 1.0, False, code, 2)
    np.testing.assert_array_equal(out.numpy(), ones)


@pytest.mark.parametrize("isa", list(ISAS))
@pytest.mark.parametrize("b,seq,h,heads", [(2, 12, 48, 4), (1, 70, 64, 2)])
@pytest.mark.parametrize("bp", [0.01, -0.1])
def test_bit_attention(ops, isa, b, seq, h, heads, bp):
    """BiT: softmax in float, probabilities binarized to {0, alpha_p}, times the binarized V; a masked
    key gets level 0 even when the quantizer maps P = 0 to alpha_p (beta_p = -0.1 < -alpha_p / 2)."""
    code = require_isa(isa)
    d = h // heads
    rng = np.random.default_rng(seq)
    q, k, v = (rng.standard_normal((b, seq, h)).astype(np.float32) for _ in range(3))
    bq, bk, bv = ((rng.standard_normal(h) * 0.1).astype(np.float32) for _ in range(3))
    mask = np.zeros((b, seq), np.float32)
    if b > 1:
        mask[1, seq // 2 :] = -1e4
    aq, ak, av, ap = 0.9, 1.1, 0.7, 0.12
    cqk = np.float32(np.float32(np.float32(aq) * np.float32(d**-0.5)) * np.float32(ak))
    cpv = np.float32(np.float32(ap) * np.float32(av))
    sq, sk, sv = (_split(np.where(a - be >= 0, 1.0, -1.0), heads) for a, be in ((q, bq), (k, bk), (v, bv)))
    s = (sq @ sk.transpose(0, 1, 3, 2)) * np.float64(cqk) + mask[:, None, None, :]
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    u = (p - bp) / ap
    level = (np.clip(u, 0, 1) >= 0.5).astype(np.float64) * (mask > -1)[:, None, None, :]
    ref = ((level @ sv) * np.float64(cpv)).transpose(0, 2, 1, 3).reshape(b, seq, h)
    out = ops.binbert_attention(
        _t(q), _t(k), _t(v), _t(mask), _t(bq), _t(bk), _t(bv), 1, heads, float(cqk), ap, bp, float(cpv), True, code, 2
    ).numpy()
    # rows whose probabilities sit within float noise of the rounding threshold may legitimately differ
    clear = (np.abs(u - 0.5) > 1e-4).all(axis=-1).transpose(0, 2, 1)  # [b, seq, heads]
    diff = np.abs(out - ref).reshape(b, seq, heads, d).max(axis=-1)
    assert clear.mean() > 0.9
    assert diff[clear].max() < 1e-5


# ------------------------------------------------------------------------------------- whole model
def _packed_engine(tmp_path, preset, cls, config=None, **load_kw):
    student = make_student(preset, cls, config=config)
    out = pack_model(student, tmp_path / f"{preset}_{cls.__name__}")
    return student, engine.load(out, **load_kw)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForQuestionAnswering])
@pytest.mark.parametrize("size", [(48, 4, 80), (96, 4, 100)])
def test_engine_matches_simulated_student(ops, tmp_path, preset, cls, size):
    """Logits of the packed engine == eval-mode logits of the fake-quant student (rel. err < 1e-4),
    with padding (default pad-id mask and an explicit 2-D mask), odd sizes and sequence length 1."""
    hidden, heads, inter = size
    student, eng = _packed_engine(tmp_path, preset, cls, tiny_config(hidden=hidden, heads=heads, inter=inter))
    for batch, seq, seed in [(3, 12, 5), (2, 70, 6), (1, 1, 7), (4, 33, 8)]:
        ids, types = random_batch(batch, seq, seed=seed)
        assert rel_err(engine_output(eng, ids, types), simulated_output(student, ids, types)) < 1e-4
    ids, types = random_batch(3, 20, seed=9)
    mask = (ids != 0).astype("int64")
    ids = paddle.where(ids == 0, paddle.full_like(ids, 5), ids)  # padded positions hold real ids; the mask hides them
    got = engine_output(eng, ids.numpy(), types.numpy(), mask.numpy())
    assert rel_err(got, simulated_output(student, ids, types, attention_mask=mask)) < 1e-4


@pytest.mark.parametrize("isa", list(ISAS))
@pytest.mark.parametrize("preset", PRESETS)
def test_engine_everyrequire_isa(ops, tmp_path, isa, preset):
    code = require_isa(isa)
    student, eng = _packed_engine(tmp_path, preset, BertForSequenceClassification, isa=isa, num_threads=2)
    assert eng.isa == code and eng.isa_name == isa
    ids, types = random_batch(3, 40, seed=3)
    assert rel_err(engine_output(eng, ids, types), simulated_output(student, ids, types)) < 1e-4


def test_engine_inputs_threads_and_errors(ops, tmp_path, monkeypatch):
    student, eng = _packed_engine(tmp_path, "bibert", BertForSequenceClassification, num_threads=1)
    ids, types = random_batch(2, 16, seed=4)
    ref = eng(ids, types)
    assert isinstance(ref, np.ndarray) and ref.shape == (2, 3) and ref.dtype == np.float32
    np.testing.assert_array_equal(eng(ids.numpy(), types.numpy()), ref)  # numpy in
    np.testing.assert_array_equal(eng(ids.numpy().tolist(), types.numpy().tolist()), ref)  # lists in
    np.testing.assert_array_equal(eng(ids.numpy()[0])[0], eng(ids.numpy()[:1])[0])  # 1-D = batch of one
    eng.set_threads(2)
    np.testing.assert_array_equal(eng(ids, types), ref)  # threads do not change a single bit
    assert np.array_equal(eng(ids), eng(ids, np.zeros_like(ids.numpy())))  # token types default to 0
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 99\)"):
        eng(np.array([[1, 2, 500]]))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        eng(np.ones((1, 161), np.int64))
    with pytest.raises(ValueError, match="attention_mask"):
        eng(ids, types, np.ones((2, 3)))
    eng.set_profiling(True)
    eng(ids, types)
    prof = eng.read_profile()
    assert prof["calls"] == 1 and prof["total"] > 0
    monkeypatch.setenv("PADDLE_BINBERT_ISA", "portable")
    assert engine.load(eng.packed).isa_name == "portable"
    monkeypatch.setenv("PADDLE_BINBERT_ISA", "sse9")
    with pytest.raises(ValueError, match="unknown ISA"):
        engine.load(eng.packed)


@pytest.mark.parametrize("preset", ["bibert", "bit"])
def test_float16_islands(ops, tmp_path, preset):
    """fp_dtype="float16" stores embeddings / LayerNorms / head in half precision; the engine then equals
    the student whose FP islands are rounded to float16."""
    student = make_student(preset, BertForQuestionAnswering)
    out = pack_model(student, tmp_path / "half", fp_dtype="float16")
    packed = load_packed(out)
    assert packed.tensors["bert.embeddings.position_embeddings.weight"].dtype == np.float16
    assert packed.tensors["bert.encoder.layers.0.linear1.alpha"].dtype == np.float32
    eng = engine.load(packed)
    round_fp_islands(student, "float16")
    ids, types = random_batch(3, 30, seed=2)
    assert rel_err(engine_output(eng, ids, types), simulated_output(student, ids, types)) < 1e-4


def test_pack_command_line(ops, tmp_path, capsys):
    """``paddle-binbert pack`` (export.pack.main): saved student -> packed folder, verified against the engine."""
    from paddle_binbert.export.pack import main

    student = make_student("bwn", BertForSequenceClassification)
    student.save_pretrained(str(tmp_path / "student"))
    assert main([str(tmp_path / "student"), str(tmp_path / "packed"), "--verify", "2"]) == 0
    out = capsys.readouterr().out
    assert "packed BertForSequenceClassification (bwn)" in out
    err = float(out.split("max relative difference")[1].split()[0])
    assert err < 1e-4


def test_gelu_sign_threshold_matches_paddle():
    thr = np.float32(engine.gelu_sign_threshold())
    below = np.nextafter(thr, np.float32(-np.inf))
    above = np.nextafter(thr, np.float32(0))
    y = F.gelu(paddle.to_tensor(np.array([below, thr, above], np.float32))).numpy()
    assert y[0] == 0 and y[1] == 0 and y[2] < 0  # -0.0 up to thr (sign +1), negative just above
    assert np.signbit(y[1])


def test_missing_compiler_gives_clear_error(monkeypatch):
    monkeypatch.setattr(engine_ops, "_MODULE", None)
    monkeypatch.setattr(engine_ops, "_ERROR", None)
    monkeypatch.setattr(engine_ops, "find_compiler", lambda: None)
    with pytest.raises(engine_ops.EngineUnavailableError, match="no C\\+\\+ compiler"):
        engine_ops.load_ops()
    assert not engine_ops.is_available()
    monkeypatch.setattr(engine_ops, "_ERROR", None)  # monkeypatch restores _MODULE afterwards


def test_ceiling_benchmark_op(ops):
    if engine.cpu_info()["best_isa"] < 2:
        pytest.skip("needs AVX-512")
    rate = float(ops.binbert_ceiling(paddle.zeros([1]), 1, 200_000, 0).numpy()[0])
    assert rate > 1e10  # binary MAC/s
