"""runtime.load against engine.load on the same packed folders: every packable preset (bibert, bit,
bwn), classification and question answering, with and without a length configuration, every ISA
and thread count; the same validation errors as load_packed and the engine."""

import json

import numpy as np
import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification

from paddle_binbert import engine, runtime
from paddle_binbert.export import pack_model
from paddle_binbert.format.packed import PackedFormatError, load_packed
from tests.engine import ISAS, PRESETS, make_student, random_batch, require_isa, tiny_config

HEADS = [BertForSequenceClassification, BertForQuestionAnswering]
# length configurations of a 3-layer model (budgets above the length keep every token)
CONFIGS = [(14, 9, 4), (40, 40, 12), (33, 20, 1), (200, 200, 200)]


def _batches():
    """(input_ids, token_type_ids, attention_mask or None) numpy batches, with padding."""
    out = []
    for batch, seq, seed in [(3, 20, 1), (1, 1, 2), (4, 70, 3), (2, 33, 4)]:
        ids, types = (t.numpy() for t in random_batch(batch, seq, seed=seed))
        out.append((ids, types, None))
        out.append((ids, types, (ids != 0).astype("int64")))
    return out


def _stack(out):
    return np.stack(out) if isinstance(out, tuple) else out


@pytest.fixture(scope="module", params=[(p, c, s) for p in PRESETS for c in HEADS for s in [(48, 4, 80), (96, 4, 100)]])
def packed(request, tmp_path_factory):
    """A packed tiny student (3 layers; head size 12, or 24 where attention writes bits directly)."""
    preset, cls, (hidden, heads, inter) = request.param
    student = make_student(preset, cls, config=tiny_config(hidden=hidden, heads=heads, inter=inter, layers=3))
    folder = tmp_path_factory.mktemp(f"{preset}_{cls.__name__}_{hidden}") / "packed"
    return preset, pack_model(student, folder)


def test_outputs_equal_the_paddle_engine(ops, lib, packed):
    preset, folder = packed
    eng = engine.load(folder, backend="native")
    rt = runtime.load(folder)
    assert rt.task == eng.task and rt.backend == "runtime"
    for ids, types, mask in _batches():
        ref = eng(ids, types, mask)
        got = rt(ids, types, mask)
        assert type(got) is type(ref)
        np.testing.assert_array_equal(_stack(got), _stack(ref))
        ref_logits, ref_hidden = eng.forward(ids, types, mask)
        got_logits, got_hidden = rt.forward(ids, types, mask)
        np.testing.assert_array_equal(got_logits, ref_logits)
        np.testing.assert_array_equal(got_hidden, ref_hidden)
    ids, _, _ = _batches()[0]
    np.testing.assert_array_equal(_stack(rt(ids)), _stack(eng(ids)))  # default token types and mask
    np.testing.assert_array_equal(_stack(rt(ids[0].tolist())), _stack(eng(ids[0].tolist())))  # 1-D list


def test_length_configurations_equal_the_paddle_engine(ops, lib, packed):
    preset, folder = packed
    eng = engine.load(folder, backend="native")
    rt = runtime.load(folder)
    ids, types, _ = _batches()[0]
    if preset == "bwn":  # all-ones attention: no significance to rank tokens, refused by both
        for model in (eng, rt):
            with pytest.raises(ValueError, match="all-ones"):
                model(ids, types, length_config=(14, 9, 4))
        return
    for ids, types, mask in _batches()[:6]:
        for config in CONFIGS:
            ref_logits, ref_hidden = eng.forward(ids, types, mask, length_config=config)
            got_logits, got_hidden = rt.forward(ids, types, mask, length_config=config)
            np.testing.assert_array_equal(got_logits, ref_logits, err_msg=str(config))
            np.testing.assert_array_equal(got_hidden, ref_hidden, err_msg=str(config))
            np.testing.assert_array_equal(
                _stack(rt(ids, types, mask, length_config=config)), _stack(eng(ids, types, mask, length_config=config))
            )
    # the configuration matters (a test that ignored it would not notice)
    assert not np.array_equal(rt.forward(ids, types)[0], rt.forward(ids, types, length_config=(6, 3, 2))[0])


@pytest.mark.parametrize("isa", list(ISAS))
def test_every_isa_and_thread_count(ops, lib, tmp_path, isa):
    require_isa(isa)
    student = make_student("bit", BertForQuestionAnswering, config=tiny_config(hidden=64, heads=4, layers=3))
    folder = pack_model(student, tmp_path / "packed")
    ref = _stack(engine.load(folder, backend="native")(*_batches()[4][:2], length_config=(30, 17, 5)))
    for threads in (1, 2, 3):
        rt = runtime.load(folder, isa=isa, num_threads=threads)
        assert rt.isa_name == isa and rt.num_threads == threads
        np.testing.assert_array_equal(_stack(rt(*_batches()[4][:2], length_config=(30, 17, 5))), ref)
    rt.set_threads(1)
    np.testing.assert_array_equal(_stack(rt(*_batches()[4][:2], length_config=(30, 17, 5))), ref)


def test_fp16_islands_and_profile(ops, lib, tmp_path):
    student = make_student("bibert", BertForSequenceClassification)
    folder = pack_model(student, tmp_path / "packed", fp_dtype="float16")
    ids, types, mask = _batches()[2]
    rt = runtime.load(folder, profile=True)
    np.testing.assert_array_equal(rt(ids, types, mask), engine.load(folder, backend="native")(ids, types, mask))
    profile = rt.read_profile()
    assert profile["calls"] == 1 and profile["total"] > 0


def test_gelu_threshold_constant_is_paddles():
    """The runtime cannot probe Paddle's GELU; its constant must be what the engine probes."""
    assert runtime.GELU_SIGN_THRESHOLD == engine.gelu_sign_threshold()


def test_bad_inputs_are_refused_like_the_engine(ops, lib, tmp_path):
    student = make_student("bibert", BertForSequenceClassification)
    folder = pack_model(student, tmp_path / "packed")
    eng, rt = engine.load(folder, backend="native"), runtime.load(folder)
    ids = np.array([[5, 7, 120]])
    cases = [
        ((ids,), {}, r"input_ids must lie in \[0, 99\)"),
        ((np.ones((1, 161), dtype="int64"),), {}, "max_position_embeddings"),
        ((ids[:, :2], None, np.ones((1, 3))), {}, "attention_mask"),
        ((ids[:, :2],), {"length_config": (3, 2, 1)}, "2 layers"),
        ((ids[:, :2],), {"length_config": (2, 3)}, "non-increasing"),
        ((np.ones((2, 2, 2), dtype="int64"),), {}, "must be"),
        ((np.ones((1, 2)),), {}, "integers"),
    ]
    for args, kwargs, pattern in cases:
        messages = []
        for model in (eng, rt):
            with pytest.raises((ValueError, TypeError), match=pattern) as info:
                model(*args, **kwargs)
            messages.append(str(info.value))
        assert messages[0] == messages[1]


def _message(fn, *args):
    with pytest.raises(PackedFormatError) as info:
        fn(*args)
    return str(info.value)


def test_corrupted_or_truncated_folders_are_rejected_like_load_packed(tmp_path):
    """Same reader, same checks, same messages (no library needed: validation comes first)."""
    student = make_student("bit", BertForSequenceClassification)
    good = pack_model(student, tmp_path / "good")
    weights = good / "model.safetensors"
    blob = weights.read_bytes()

    def variant(name, mutate):
        folder = tmp_path / name
        folder.mkdir()
        for f in good.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        mutate(folder)
        return folder

    def flip_last_byte(folder):
        data = bytearray(blob)
        data[-3] ^= 0xFF
        (folder / "model.safetensors").write_bytes(bytes(data))

    def bad_config(folder):
        cfg = json.loads((folder / "config.json").read_text())
        cfg["binbert_packed"]["hidden_size"] = 40
        (folder / "config.json").write_text(json.dumps(cfg))

    folders = [
        variant("truncated", lambda f: (f / "model.safetensors").write_bytes(blob[: len(blob) // 2])),
        variant("tiny", lambda f: (f / "model.safetensors").write_bytes(blob[:5])),
        variant("corrupted", flip_last_byte),
        variant("no_weights", lambda f: (f / "model.safetensors").unlink()),
        variant("bad_json", lambda f: (f / "config.json").write_text("{")),
        variant("inconsistent", bad_config),
        tmp_path / "missing",
    ]
    for folder in folders:
        expected = _message(load_packed, folder)
        assert _message(runtime.load, folder) == expected, folder.name
    assert "truncated" in _message(runtime.load, folders[0])
    assert "corrupted (CRC32 mismatch)" in _message(runtime.load, folders[2])
