"""The packed folder's writer and validating reader on their own (numpy only, no Paddle model):
a round trip of every variant of the specification, and the reader's errors for a missing or
out-of-range metadata field, a non-finite tensor and a file that does not match its metadata."""

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from paddle_binbert.format.packed import (
    BIT_ORDER,
    CONFIG_NAME,
    CRC_KEY,
    FORMAT_NAME,
    FORMAT_VERSION,
    META_FIELDS,
    PACKED_KEY,
    WEIGHTS_NAME,
    PackedFormatError,
    expected_tensor_specs,
    has_packed_marker,
    is_fp_island,
    load_packed,
    pack_bits,
    write_packed,
)

ROOT = Path(__file__).resolve().parents[2]


def tiny_meta(**overrides):
    """Metadata of a tiny model whose hidden and FFN sizes leave padding bits in the last word."""
    meta = {
        "architecture": "BertForSequenceClassification",
        "task": "classification",
        "preset": "bit",
        "hidden_size": 70,
        "num_layers": 2,
        "num_heads": 2,
        "intermediate_size": 100,
        "vocab_size": 30,
        "max_position_embeddings": 16,
        "type_vocab_size": 2,
        "num_labels": 3,
        "pad_token_id": 0,
        "hidden_act": "gelu",
        "attention": "softmax_elastic",
        "activation": "elastic",
        "ffn2_input": "unsigned",
        "pool_act": "tanh",
        "layer_norm_eps": {"embeddings": 1e-12, "encoder": 1e-12},
    }
    meta.update(overrides)
    return meta


def random_tensors(meta, seed=0):
    """Tensors of every name, shape and dtype the specification asks for (bits with zero padding)."""
    rng = np.random.default_rng(seed)
    h, inter = meta["hidden_size"], meta["intermediate_size"]
    out = {}
    for name, (shape, dtype) in expected_tensor_specs(meta).items():
        if dtype == "uint64":
            k = inter if ".linear2." in name else h
            out[name] = pack_bits(rng.random((shape[0], k)) < 0.5)
        else:
            out[name] = rng.standard_normal(shape).astype(np.float32)
    return out


def write(folder: Path, meta, tensors=None):
    folder.mkdir()
    config = {"hidden_size": meta["hidden_size"], "binbert_quant_config": {"name": meta["preset"]}, PACKED_KEY: meta}
    write_packed(folder, config, random_tensors(meta) if tensors is None else tensors)
    return folder


def edit_meta(folder: Path, mutate) -> None:
    cfg = json.loads((folder / CONFIG_NAME).read_text())
    mutate(cfg[PACKED_KEY])
    (folder / CONFIG_NAME).write_text(json.dumps(cfg))


VARIANTS = [
    {},
    {"attention": "bool", "activation": "sign", "ffn2_input": "signed", "preset": "bibert"},
    {"attention": "ones", "activation": "sign", "ffn2_input": "signed", "hidden_act": "relu", "preset": "bwn"},
    {"architecture": "BertForQuestionAnswering", "task": "question_answering", "num_labels": 2},
    {"fp_dtype": "float16"},
]


@pytest.mark.parametrize("overrides", VARIANTS, ids=lambda o: "-".join(map(str, o.values())) or "bit")
def test_write_then_load_round_trip(tmp_path, overrides):
    meta = tiny_meta(**overrides)
    tensors = random_tensors(meta, seed=1)
    folder = write(tmp_path / "m", meta, tensors)
    assert has_packed_marker(folder)
    packed = load_packed(folder)
    fp_dtype = overrides.get("fp_dtype", "float32")
    assert packed.meta == dict(meta, format=FORMAT_NAME, version=1, bit_order=BIT_ORDER, fp_dtype=fp_dtype)
    assert sorted(packed.tensors) == sorted(tensors)
    for name, arr in tensors.items():
        want = arr.astype(fp_dtype) if is_fp_island(name) else arr
        assert packed.tensors[name].dtype == want.dtype, name
        np.testing.assert_array_equal(packed.tensors[name], want, err_msg=name)


def test_committed_example_model_follows_the_specification():
    folder = ROOT / "examples" / "models" / "sst2-1bit"
    if (folder / WEIGHTS_NAME).stat().st_size < 1024:
        pytest.skip("the example model is a Git LFS pointer here")
    packed = load_packed(folder)
    specs = expected_tensor_specs(packed.meta)
    assert {k: (v.shape, v.dtype.name) for k, v in packed.tensors.items()} == specs


@pytest.mark.parametrize("field", sorted(set(META_FIELDS) - {"format", "version", "fp_dtype"}))
def test_missing_metadata_field_names_file_and_field(tmp_path, field):
    folder = write(tmp_path / "m", tiny_meta())
    edit_meta(folder, lambda m: m.pop(field))
    with pytest.raises(PackedFormatError) as info:
        load_packed(folder)
    message = str(info.value)
    assert message.startswith(f"{folder / CONFIG_NAME}: {PACKED_KEY}.{field} is missing; expected "), message


def test_absent_fp_dtype_means_float32(tmp_path):
    folder = write(tmp_path / "m", tiny_meta())
    edit_meta(folder, lambda m: m.pop("fp_dtype"))
    assert load_packed(folder).meta["fp_dtype"] == "float32"


BAD_VALUES = [
    ("hidden_act", "swish", "one of 'gelu', 'relu'"),
    ("attention", "softmax", "one of 'bool', 'softmax_elastic', 'ones'"),
    ("num_heads", 0, "a positive integer"),
    ("hidden_size", "70", "a positive integer"),
    ("num_layers", True, "a positive integer"),
    ("num_layers", 2.0, "a positive integer"),
    ("pad_token_id", -1, "a non-negative integer"),
    ("pad_token_id", 30, "less than vocab_size 30"),
    ("num_heads", 3, "a divisor of hidden_size 70"),
    ("task", "question_answering", "'classification' for BertForSequenceClassification"),
    ("layer_norm_eps", {"embeddings": 1e-12}, "positive numbers"),
    ("layer_norm_eps", {"embeddings": 1e-12, "encoder": "1e-12"}, "positive numbers"),
    ("fp_dtype", "bfloat16", "one of 'float32', 'float16'"),
    ("preset", None, "a str"),
]


@pytest.mark.parametrize("field,value,expected", BAD_VALUES, ids=[f"{f}={v!r}" for f, v, _ in BAD_VALUES])
def test_bad_metadata_value_names_file_field_and_expectation(tmp_path, field, value, expected):
    folder = write(tmp_path / "m", tiny_meta())
    edit_meta(folder, lambda m: m.__setitem__(field, value))
    with pytest.raises(PackedFormatError) as info:
        load_packed(folder)
    message = str(info.value)
    assert message.startswith(f"{folder / CONFIG_NAME}: {PACKED_KEY}.{field} is {value!r}; expected "), message
    assert message.endswith(expected), message


def test_metadata_that_is_not_an_object_is_rejected(tmp_path):
    folder = write(tmp_path / "m", tiny_meta())
    cfg = json.loads((folder / CONFIG_NAME).read_text())
    cfg[PACKED_KEY] = "binbert-packed"
    (folder / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(PackedFormatError, match="not a packed binbert model"):
        load_packed(folder)
    assert not has_packed_marker(folder)


def test_non_finite_tensor_is_named(tmp_path):
    meta = tiny_meta()
    tensors = random_tensors(meta)
    folder = write(tmp_path / "m", meta, tensors)
    # a file written by another program: an infinite value under a valid checksum
    tensors = safetensors.numpy.load_file(str(folder / WEIGHTS_NAME))
    tensors["bert.encoder.layers.1.norm2.weight"][5] = np.inf
    crcs = {n: zlib.crc32(np.ascontiguousarray(a).view(np.uint8).reshape(-1)) & 0xFFFFFFFF for n, a in tensors.items()}
    header = {"format": FORMAT_NAME, "version": str(FORMAT_VERSION), CRC_KEY: json.dumps(crcs)}
    safetensors.numpy.save_file(tensors, str(folder / WEIGHTS_NAME), metadata=header)
    with pytest.raises(PackedFormatError) as info:
        load_packed(folder)
    assert str(info.value) == (
        f"{folder / WEIGHTS_NAME}: tensor 'bert.encoder.layers.1.norm2.weight' holds NaN or infinite values"
    )


def test_tensors_written_for_other_metadata_are_named(tmp_path):
    """A file whose tensors follow different metadata (here: 3 layers, the config says 2) names the
    file, the config and the tensors."""
    folder = write(tmp_path / "m", tiny_meta(num_layers=3))
    edit_meta(folder, lambda m: m.__setitem__("num_layers", 2))
    with pytest.raises(PackedFormatError) as info:
        load_packed(folder)
    message = str(info.value)
    assert message.startswith(f"{folder / WEIGHTS_NAME} does not match {folder / CONFIG_NAME}: unexpected tensor(s): ")
    assert "bert.encoder.layers.2.linear1.bits" in message


@pytest.mark.parametrize(
    "mutate,pattern",
    [
        (lambda t: t.pop("classifier.bias"), r"missing tensor\(s\): classifier\.bias"),
        (
            lambda t: t.__setitem__("bert.encoder.layers.0.linear2.bits", np.zeros((70, 1), np.uint64)),
            r"'bert\.encoder\.layers\.0\.linear2\.bits' has shape \[70, 1\], expected \[70, 2\]",
        ),
        (
            lambda t: t.__setitem__("bert.pooler.dense.alpha", np.zeros(70, np.float64)),
            r"'bert\.pooler\.dense\.alpha' has dtype float64, expected float32",
        ),
    ],
    ids=["missing", "shape", "dtype"],
)
def test_writer_refuses_tensors_off_the_specification(tmp_path, mutate, pattern):
    meta = tiny_meta()
    tensors = random_tensors(meta)
    mutate(tensors)
    folder = tmp_path / "m"
    folder.mkdir()
    config = {"binbert_quant_config": {}, PACKED_KEY: meta}
    prefix = r"^write_packed: the tensors do not follow the packed format: .*"
    with pytest.raises(PackedFormatError, match=prefix + pattern):
        write_packed(folder, config, tensors)
    assert list(folder.iterdir()) == []  # nothing written


def test_writer_refuses_bad_metadata(tmp_path):
    meta = tiny_meta()
    tensors = random_tensors(meta)
    del meta["ffn2_input"]
    missing = r"^write_packed: binbert_packed\.ffn2_input is missing; expected one of"
    with pytest.raises(PackedFormatError, match=missing):
        write_packed(tmp_path, {"binbert_quant_config": {}, PACKED_KEY: meta}, tensors)
    with pytest.raises(PackedFormatError, match="no binbert_quant_config"):
        write_packed(tmp_path, {PACKED_KEY: tiny_meta()}, tensors)
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_non_finite_values(tmp_path):
    """A diverged student (NaN in a scale) is refused before anything is written: the reader would
    refuse the folder anyway."""
    meta = tiny_meta()
    tensors = random_tensors(meta)
    tensors["bert.pooler.dense.alpha"][3] = np.nan
    folder = tmp_path / "m"
    folder.mkdir()
    with pytest.raises(PackedFormatError, match=r"^write_packed: tensor\(s\) 'bert\.pooler\.dense\.alpha' hold NaN"):
        write_packed(folder, {"binbert_quant_config": {}, PACKED_KEY: meta}, tensors)
    assert list(folder.iterdir()) == []
