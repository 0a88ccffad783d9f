"""Length configurations (Drop-and-Restore) on the packed engine: the native kernels and the
simulated backend against ``length_adaptive_forward`` on the fake-quant student they were packed
from, for BiBERT's bool attention and BiT's softmax attention, classification and QA, every ISA."""

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification

from paddle_binbert import engine
from paddle_binbert.export import pack_model
from paddle_binbert.length_adaptive import length_adaptive_forward

from . import ISAS, make_student, random_batch, rel_err, require_isa, tiny_config


def _reference(student, ids, types, config):
    with paddle.no_grad():
        out = length_adaptive_forward(student, ids, token_type_ids=types, length_config=config)
    if out.logits is not None:
        return out.logits.numpy(), out.sequence_output.numpy()
    return np.stack([out.start_logits.numpy(), out.end_logits.numpy()]), out.sequence_output.numpy()


def _engine_out(eng, ids, types, config):
    logits, hidden = eng.forward(ids.numpy(), types.numpy(), length_config=config)
    if eng.task == "question_answering":
        logits = np.stack([logits[..., 0], logits[..., 1]])
    return logits, hidden


@pytest.mark.parametrize("preset", ["bibert", "bit"])
@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForQuestionAnswering])
@pytest.mark.parametrize("size", [(48, 4, 80), (96, 4, 100)])  # head size 12 (float context) / 24 (bit output)
def test_engine_length_config_matches_the_length_adaptive_student(ops, tmp_path, preset, cls, size):
    hidden, heads, inter = size
    student = make_student(preset, cls, config=tiny_config(hidden=hidden, heads=heads, inter=inter, layers=3))
    folder = pack_model(student, tmp_path / "packed")
    backends = [engine.load(folder, backend="native"), engine.load(folder, backend="simulated")]
    for batch, seq, config, seed in [
        (3, 20, (14, 9, 4), 1),
        (2, 70, (40, 40, 12), 2),
        (4, 33, (33, 20, 1), 3),
        (1, 5, (9, 9, 9), 4),
    ]:
        ids, types = random_batch(batch, seq, seed=seed)
        ref_logits, ref_hidden = _reference(student, ids, types, config)
        for eng in backends:
            logits, hid = _engine_out(eng, ids, types, config)
            assert logits.shape == ref_logits.shape and hid.shape == ref_hidden.shape, eng.backend
            assert rel_err(logits, ref_logits) < 1e-4, (eng.backend, config)
            assert rel_err(hid, ref_hidden) < 1e-4, (eng.backend, config)
    # the dropping changes the answer (the test would not notice a configuration that is ignored)
    ids, types = random_batch(3, 20, seed=1)
    full, _ = _engine_out(backends[0], ids, types, None)
    assert rel_err(_engine_out(backends[0], ids, types, (6, 3, 2))[0], full) > 1e-3


@pytest.mark.parametrize("isa", list(ISAS))
@pytest.mark.parametrize("preset", ["bibert", "bit"])
def test_every_isa_and_thread_count_selects_the_same_tokens(ops, tmp_path, isa, preset):
    require_isa(isa)
    student = make_student(preset, BertForQuestionAnswering, config=tiny_config(hidden=64, heads=4, layers=3))
    folder = pack_model(student, tmp_path / "packed")
    ids, types = random_batch(3, 40, seed=7)
    ref, _ = _reference(student, ids, types, (30, 17, 5))
    for threads in (1, 2):
        eng = engine.load(folder, backend="native", isa=isa, num_threads=threads)
        assert rel_err(_engine_out(eng, ids, types, (30, 17, 5))[0], ref) < 1e-4


def test_full_configuration_is_the_plain_engine_bit_for_bit(ops, tmp_path):
    student = make_student("bit", BertForSequenceClassification, config=tiny_config(layers=3))
    eng = engine.load(pack_model(student, tmp_path / "packed"), backend="native")
    ids, types = random_batch(3, 20, seed=2)
    plain, plain_hidden = eng.forward(ids.numpy(), types.numpy())
    logits, hidden = eng.forward(ids.numpy(), types.numpy(), length_config=(64, 30, 20))
    np.testing.assert_array_equal(logits, plain)
    np.testing.assert_array_equal(hidden, plain_hidden)
    np.testing.assert_array_equal(eng(ids.numpy(), types.numpy(), length_config=(64, 64, 64)), plain)


def test_bad_configurations_and_bwn_are_refused(ops, tmp_path):
    student = make_student("bibert", BertForSequenceClassification)
    eng = engine.load(pack_model(student, tmp_path / "bibert"), backend="native")
    ids, types = random_batch(2, 10)
    with pytest.raises(ValueError, match="non-increasing"):
        eng(ids.numpy(), length_config=(4, 8))
    with pytest.raises(ValueError, match="2 layers"):
        eng(ids.numpy(), length_config=(8, 4, 2))
    bwn = make_student("bwn", BertForSequenceClassification)
    for backend in ("native", "simulated"):
        eng = engine.load(pack_model(bwn, tmp_path / f"bwn_{backend}"), backend=backend)
        with pytest.raises(ValueError, match="all-ones"):
            eng(ids.numpy(), length_config=(8, 4))
