"""The engine's simulated backend: the fallback when the C++ operators cannot be built, and
``backend="simulated"`` / ``PADDLE_BINBERT_ENGINE=simulated``. Its logits equal the native
engine's and the simulated (fake-quant) student's for the bibert / bit / bwn presets."""

import logging
from pathlib import Path

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification, BertTokenizer

from paddle_binbert import engine
from paddle_binbert.engine import ops as engine_ops
from paddle_binbert.engine import runner as engine_runner
from paddle_binbert.export import pack_model, round_fp_islands
from paddle_binbert.format.packed import load_packed

from . import PRESETS, engine_output, make_student, random_batch, rel_err, simulated_output, tiny_config

VOCAB = Path(__file__).resolve().parents[1] / "fixtures" / "vocab.txt"


@pytest.fixture
def no_compiler(monkeypatch):
    """This process behaves as a machine without a C++ compiler (the operators were never loaded)."""
    monkeypatch.setattr(engine_ops, "_MODULE", None)
    monkeypatch.setattr(engine_ops, "_ERROR", None)
    monkeypatch.setattr(engine_ops, "find_compiler", lambda: None)
    monkeypatch.setattr(engine_runner, "_WARNED", set())
    monkeypatch.delenv(engine.BACKEND_ENV, raising=False)
    yield
    monkeypatch.setattr(engine_ops, "_ERROR", None)  # monkeypatch restores _MODULE afterwards


def _fallback_warnings(caplog):
    return [r for r in caplog.records if r.name == "paddle_binbert.engine" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("reference", ["student", "native"])
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForQuestionAnswering])
@pytest.mark.parametrize("size", [(48, 4, 80), (96, 4, 100)])
def test_simulated_matches_native_and_student(tmp_path, request, preset, cls, size, reference):
    """Simulated backend == fake-quant student / == native engine (rel. err < 1e-4), with padding
    (pad-id mask and an explicit 2-D mask), odd sizes and sequence length 1; hidden states too.
    The native comparison is skipped (listed by ``pytest -rs``) where the C++ operators cannot be built."""
    hidden, heads, inter = size
    student = make_student(preset, cls, config=tiny_config(hidden=hidden, heads=heads, inter=inter))
    packed = load_packed(pack_model(student, tmp_path / "packed"))
    sim = engine.load(packed, backend="simulated")
    assert isinstance(sim, engine.SimulatedBertEngine) and sim.backend == "simulated"
    if reference == "native":
        request.getfixturevalue("ops")  # skips where the C++ operators cannot be built
        native = engine.load(packed, backend="native")
        assert isinstance(native, engine.PackedBertEngine)
    for batch, seq, seed in [(3, 12, 5), (2, 70, 6), (1, 1, 7), (4, 33, 8)]:
        ids, types = random_batch(batch, seq, seed=seed)
        got = engine_output(sim, ids, types)
        if reference == "native":
            assert rel_err(got, engine_output(native, ids, types)) < 1e-4
            assert rel_err(sim.forward(ids, types)[1], native.forward(ids, types)[1]) < 1e-4
        else:
            assert rel_err(got, simulated_output(student, ids, types)) < 1e-4
    ids, types = random_batch(3, 20, seed=9)
    mask = (ids != 0).astype("int64")
    ids = paddle.where(ids == 0, paddle.full_like(ids, 5), ids)  # padded positions hold real ids; the mask hides them
    got = engine_output(sim, ids.numpy(), types.numpy(), mask.numpy())
    if reference == "native":
        assert rel_err(got, engine_output(native, ids.numpy(), types.numpy(), mask.numpy())) < 1e-4
    else:
        assert rel_err(got, simulated_output(student, ids, types, attention_mask=mask)) < 1e-4


def test_fallback_without_compiler(tmp_path, no_compiler, caplog):
    """No C++ compiler: engine.load warns once (why, and how to fix it) and runs the simulated backend."""
    student = make_student("bit", BertForSequenceClassification)
    out = pack_model(student, tmp_path / "packed")
    with caplog.at_level(logging.WARNING, logger="paddle_binbert.engine"):
        eng = engine.load(out)
        again = engine.load(out, num_threads=1, isa="portable")  # the ISA does not matter to the fallback
    assert isinstance(eng, engine.SimulatedBertEngine) and isinstance(again, engine.SimulatedBertEngine)
    warnings = _fallback_warnings(caplog)
    assert len(warnings) == 1  # once per process, not per load
    message = warnings[0].getMessage()
    assert "no C++ compiler" in message and "apt-get install g++" in message
    assert "PADDLE_BINBERT_ENGINE=simulated" in message and "simulated backend" in message
    ids, types = random_batch(3, 16, seed=1)
    assert rel_err(engine_output(eng, ids, types), simulated_output(student, ids, types)) < 1e-4
    with pytest.raises(engine.EngineUnavailableError, match="no C\\+\\+ compiler"):
        engine.load(out, backend="native")


def test_backend_choice_and_environment(tmp_path, monkeypatch, caplog):
    student = make_student("bibert", BertForQuestionAnswering)
    packed = load_packed(pack_model(student, tmp_path / "packed"))
    monkeypatch.setattr(engine_runner, "_WARNED", set())
    monkeypatch.setenv(engine.BACKEND_ENV, "simulated")
    with caplog.at_level(logging.WARNING, logger="paddle_binbert.engine"):
        eng = engine.load(packed)
    assert isinstance(eng, engine.SimulatedBertEngine)
    assert not _fallback_warnings(caplog)  # asked for: no warning
    assert "simulated" in repr(eng) and eng.isa_name == "simulated"
    monkeypatch.setenv(engine.BACKEND_ENV, "gpu")
    with pytest.raises(ValueError, match="PADDLE_BINBERT_ENGINE"):
        engine.load(packed)
    with pytest.raises(ValueError, match="unknown engine backend"):
        engine.load(packed, backend="fast")
    assert engine.resolve_backend("Simulated") == "simulated"


def test_explicit_native_backend_beats_the_environment(ops, tmp_path, monkeypatch):
    """``backend="native"`` wins over ``PADDLE_BINBERT_ENGINE=simulated`` (skipped without the operators)."""
    packed = load_packed(pack_model(make_student("bibert", BertForQuestionAnswering), tmp_path / "packed"))
    monkeypatch.setenv(engine.BACKEND_ENV, "simulated")
    assert isinstance(engine.load(packed), engine.SimulatedBertEngine)
    assert isinstance(engine.load(packed, backend="native"), engine.PackedBertEngine)


def test_simulated_inputs_profile_and_errors(tmp_path):
    """Same input conventions and checks as the native engine."""
    student = make_student("bwn", BertForSequenceClassification)
    eng = engine.load(pack_model(student, tmp_path / "packed"), backend="simulated")
    ids, types = random_batch(2, 16, seed=4)
    ref = eng(ids, types)
    assert isinstance(ref, np.ndarray) and ref.shape == (2, 3) and ref.dtype == np.float32
    np.testing.assert_array_equal(eng(ids.numpy().tolist(), types.numpy().tolist()), ref)  # lists in
    np.testing.assert_allclose(eng(ids.numpy()[0])[0], eng(ids.numpy()[:1])[0], rtol=1e-6)  # 1-D = batch of one
    assert np.array_equal(eng(ids), eng(ids, np.zeros_like(ids.numpy())))  # token types default to 0
    assert eng.config.num_labels == 3 and eng.task == "classification"
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 99\)"):
        eng(np.array([[1, 2, 500]]))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        eng(np.ones((1, 161), np.int64))
    with pytest.raises(ValueError, match="attention_mask"):
        eng(ids, types, np.ones((2, 3)))
    eng.set_threads(2)
    eng.set_profiling(True)
    eng(ids, types)
    prof = eng.read_profile()
    assert prof["calls"] == 1 and prof["total"] > 0


def test_simulated_float16_islands(tmp_path):
    student = make_student("bit", BertForQuestionAnswering)
    eng = engine.load(pack_model(student, tmp_path / "half", fp_dtype="float16"), backend="simulated")
    round_fp_islands(student, "float16")
    ids, types = random_batch(3, 30, seed=2)
    assert rel_err(engine_output(eng, ids, types), simulated_output(student, ids, types)) < 1e-4


def _packed_and_student(tmp_path, task, preset="bibert"):
    """A tiny student saved twice: packed (``packed/``) and as a fake-quant checkpoint (``student/``)."""
    cls = BertForSequenceClassification if task == "text_classification" else BertForQuestionAnswering
    student = make_student(preset, cls, config=tiny_config(vocab=1353, max_pos=64))
    if cls is BertForSequenceClassification:  # predictions far from ties
        student.classifier.weight.set_value(student.classifier.weight * 40.0)
    tokenizer = BertTokenizer(vocab_file=str(VOCAB))
    packed = pack_model(student, tmp_path / "packed", tokenizer=tokenizer)
    student.save_pretrained(str(tmp_path / "student"))
    tokenizer.save_pretrained(str(tmp_path / "student"))
    return packed, tmp_path / "student"


LONG = "the story goes on and on and the film is long , but the cat sat on the mat " * 2


@pytest.mark.parametrize("length_config", [None, "6-3"])
@pytest.mark.parametrize("task", ["text_classification", "question_answering"])
def test_taskflow_on_packed_model_without_compiler(tmp_path, no_compiler, task, length_config):
    """Taskflow on a packed folder works on a machine without a compiler, with the student's answers,
    at full length and with a length configuration (Drop-and-Restore in the engine vs
    ``length_adaptive_forward`` on the student)."""
    from paddle_binbert import Taskflow

    packed, student = _packed_and_student(tmp_path, task)
    options = {} if length_config is None else {"length_config": length_config}
    flow = Taskflow(task, task_path=str(packed), max_length=32, **options)
    assert isinstance(flow.model, engine.SimulatedBertEngine)
    reference = Taskflow(task, task_path=str(student), max_length=32, **options)
    if task == "text_classification":
        inputs = ["a gripping , funny film", ("the cat sat on the mat", "a cat is sitting"), "the story goes on", LONG]
        got, ref = flow(inputs), reference(inputs)
        assert [[p["label"] for p in r["predictions"]] for r in got] == [
            [p["label"] for p in r["predictions"]] for r in ref
        ]
        for g, r in zip(got, ref):
            assert g["predictions"][0]["score"] == pytest.approx(r["predictions"][0]["score"], rel=1e-4)
    else:
        inputs = [
            {"question": "who sat on the mat ?", "context": "the cat sat on the mat and the film goes on ."},
            {"question": "what goes on ?", "context": LONG},
        ]
        got, ref = flow(inputs), reference(inputs)
        assert [(r["answer"], r["start"], r["end"]) for r in got] == [(r["answer"], r["start"], r["end"]) for r in ref]
        for g, r in zip(got, ref):
            assert g["score"] == pytest.approx(r["score"], rel=1e-3)
    if length_config is not None and task == "question_answering":  # the budgets change the long context's answer
        full = Taskflow(task, task_path=str(packed), max_length=32)(inputs)
        assert full[-1]["score"] != pytest.approx(got[-1]["score"], rel=1e-4)


def test_taskflow_packed_length_config_errors(tmp_path, no_compiler):
    """Bad configurations fail when the Taskflow is built: wrong layer count, and BWN's all-ones attention."""
    from paddle_binbert import Taskflow

    packed, _ = _packed_and_student(tmp_path, "text_classification")
    with pytest.raises(ValueError, match="2 layers"):
        Taskflow("text_classification", task_path=str(packed), length_config="9-7-5")
    bwn, _ = _packed_and_student(tmp_path / "bwn", "text_classification", preset="bwn")
    with pytest.raises(ValueError, match="all-ones"):
        Taskflow("text_classification", task_path=str(bwn), length_config="20-10")
