"""The packed 1-bit model file: round trip, validation, corruption and truncation errors."""

import json
import os
import struct
from pathlib import Path

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification, BertTokenizer

from paddle_binbert import quantize_model
from paddle_binbert.export import pack_model
from paddle_binbert.format.packed import PackedFormatError, expected_tensor_specs, load_packed, pack_bits, unpack_bits
from paddle_binbert.quant import QuantEmbedding, QuantLinear

from . import PRESETS, make_student, random_batch, tiny_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def packed_bit(tmp_path_factory):
    """A packed BiT classifier (elastic quantizers: the richest tensor set) and its student."""
    student = make_student("bit", BertForSequenceClassification)
    out = tmp_path_factory.mktemp("packed") / "bit"
    pack_model(student, out)
    return student, out


def _rewrite(path: Path, mutate) -> None:
    """Load model.safetensors, apply ``mutate(tensors, metadata)`` and save it again (no CRC update)."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    weights = path / "model.safetensors"
    with safe_open(str(weights), framework="np") as fh:
        metadata = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    mutate(tensors, metadata)
    save_file(tensors, str(weights), metadata=metadata)


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


# ------------------------------------------------------------------------------------- bits
@pytest.mark.parametrize("k", [1, 7, 63, 64, 65, 130])
def test_pack_bits_round_trip_and_layout(k):
    rng = np.random.default_rng(k)
    bits = rng.random((5, k)) < 0.5
    words = pack_bits(bits)
    assert words.dtype == np.uint64 and words.shape == (5, (k + 63) // 64)
    np.testing.assert_array_equal(unpack_bits(words, k), bits)
    # value i sits in bit i % 64 of word i // 64; padding bits are zero
    for i in range(k):
        assert bool((int(words[2, i // 64]) >> (i % 64)) & 1) == bits[2, i]
    if k % 64:
        assert int(words[:, -1].max()) < (1 << (k % 64))


# ------------------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForQuestionAnswering])
def test_pack_round_trip(tmp_path, preset, cls):
    student = make_student(preset, cls)
    out = pack_model(student, tmp_path / "m")
    packed = load_packed(out)
    meta, t = packed.meta, packed.tensors
    assert packed.task == ("classification" if cls is BertForSequenceClassification else "question_answering")
    assert set(t) == set(expected_tensor_specs(meta))
    assert packed.quant_config.name == preset
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == [cls.__name__] and cfg["binbert_quant_config"]["name"] == preset
    bert = student.bert
    with paddle.no_grad():
        for i, layer in enumerate(bert.encoder.layers):
            for lin_name in ("self_attn.q_proj", "self_attn.out_proj", "linear1", "linear2"):
                lin = layer
                for part in lin_name.split("."):
                    lin = getattr(lin, part)
                assert isinstance(lin, QuantLinear)
                wq = lin.quantized_weight().numpy()  # [in, out]
                name = f"bert.encoder.layers.{i}.{lin_name}"
                signs = unpack_bits(t[f"{name}.bits"], wq.shape[0])  # [out, in]
                alpha = t[f"{name}.alpha"]
                if preset == "bit":  # the elastic input scale is folded into alpha
                    a_x = float(lin.input_quantizer.alpha.numpy()[0])
                    np.testing.assert_array_equal(t[f"{name}.input_alpha"], np.float32([a_x]))
                    np.testing.assert_array_equal(t[f"{name}.input_beta"], lin.input_quantizer.beta.numpy())
                    alpha_w = np.abs(wq).max(axis=0)
                    np.testing.assert_array_equal(alpha, (np.float32(a_x) * alpha_w).astype(np.float32))
                else:
                    np.testing.assert_array_equal(alpha, np.abs(wq).max(axis=0))
                    np.testing.assert_array_equal(np.where(signs.T, 1.0, -1.0) * alpha[None, :], wq)
                np.testing.assert_array_equal(signs.T, wq >= 0)
                np.testing.assert_array_equal(t[f"{name}.bias"], lin.bias.numpy())
            np.testing.assert_array_equal(t[f"bert.encoder.layers.{i}.norm2.weight"], layer.norm2.weight.numpy())
        emb = bert.embeddings.word_embeddings
        assert isinstance(emb, QuantEmbedding)
        ids, _ = random_batch(seq_len=20)
        rows = emb(ids).numpy()  # quantized exactly as the forward pass does (gathered rows)
        table = np.where(unpack_bits(t["bert.embeddings.word_embeddings.bits"], rows.shape[-1]), 1.0, -1.0)
        table = (table * t["bert.embeddings.word_embeddings.alpha"][:, None]).astype(np.float32)
        np.testing.assert_array_equal(table[ids.numpy()], rows)
    np.testing.assert_array_equal(t["classifier.weight"], student.classifier.weight.numpy())
    np.testing.assert_array_equal(
        t["bert.embeddings.position_embeddings.weight"], bert.embeddings.position_embeddings.weight.numpy()
    )
    assert ("bert.pooler.dense.bits" in t) == (cls is BertForSequenceClassification)


def test_pack_writes_tokenizer_and_replaces_atomically(tmp_path):
    student = make_student("bibert", BertForSequenceClassification)
    tok = BertTokenizer(str(FIXTURES / "vocab.txt"))
    out = tmp_path / "model"
    pack_model(student, out, tokenizer=tok)
    assert (out / "vocab.txt").is_file() and (out / "tokenizer_config.json").is_file()
    before = load_packed(out).tensors
    pack_model(student, out)  # overwrite in place
    after = load_packed(out).tensors
    assert sorted(before) == sorted(after)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folders left behind
    with pytest.raises(FileExistsError):
        pack_model(student, out, overwrite=False)


def test_packed_size_is_small(tmp_path):
    student = make_student("bibert", BertForSequenceClassification, config=tiny_config(hidden=128, heads=2, inter=256))
    out = pack_model(student, tmp_path / "m")
    packed = load_packed(out)
    binary = sum(a.nbytes for n, a in packed.tensors.items() if n.endswith(".bits"))
    encoder_fp32 = sum(4 * int(np.prod(p.shape)) for n, p in student.named_parameters() if n.endswith("weight"))
    assert binary * 30 < encoder_fp32


# ------------------------------------------------------------------------------------- unsupported
def test_pack_rejects_unsupported_models(tmp_path):
    fp = BertForSequenceClassification(tiny_config())
    with pytest.raises(ValueError, match="not quantized"):
        pack_model(fp, tmp_path / "fp")
    ternary = BertForSequenceClassification(tiny_config())
    quantize_model(ternary, "binarybert_ternary")
    with pytest.raises(ValueError, match="1-1-1|binary"):
        pack_model(ternary, tmp_path / "t")
    fresh = BertForSequenceClassification(tiny_config())
    quantize_model(fresh, "bit")  # elastic alphas never initialised from data
    with pytest.raises(ValueError, match="not initialised"):
        pack_model(fresh, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    # a binary student on BinaryBERT's half-width layout: q/k/v narrower than hidden_size
    from paddle_binbert.splitting import halve_model

    half = halve_model(BertForSequenceClassification(tiny_config()), importance="magnitude")
    quantize_model(half, "bibert")
    assert half.bert.encoder.layers[0].self_attn.q_proj.weight.shape[1] < half.config.hidden_size
    with pytest.raises(ValueError, match="half-width"):
        pack_model(half, tmp_path / "h")
    assert not (tmp_path / "h").exists()


# ------------------------------------------------------------------------------------- validation
def test_corrupted_tensor_is_named(packed_bit, tmp_path):
    _, src = packed_bit
    bad = _copy(src, tmp_path / "bad")
    weights = bad / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    name = "bert.encoder.layers.1.linear1.bits"
    start = 8 + n + header[name]["data_offsets"][0]
    raw[start + 3] ^= 0x10
    weights.write_bytes(bytes(raw))
    with pytest.raises(PackedFormatError, match=r"linear1\.bits.*corrupted"):
        load_packed(bad)


def test_truncated_file_names_file_and_tensor(packed_bit, tmp_path):
    _, src = packed_bit
    bad = _copy(src, tmp_path / "trunc")
    weights = bad / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 1000])
    with pytest.raises(PackedFormatError, match=r"model\.safetensors: truncated: tensor '.+'"):
        load_packed(bad)
    weights.write_bytes(data[:5])
    with pytest.raises(PackedFormatError, match="truncated"):
        load_packed(bad)
    weights.write_bytes(data[:8] + b"{not json" + data[17:200])
    with pytest.raises(PackedFormatError, match="model.safetensors"):
        load_packed(bad)


def test_shape_and_dtype_mismatch_name_the_tensor(packed_bit, tmp_path):
    _, src = packed_bit
    shape_dir = _copy(src, tmp_path / "shape")
    name = "bert.encoder.layers.0.self_attn.k_proj.alpha"
    _rewrite(shape_dir, lambda t, m: t.__setitem__(name, t[name][:-1].copy()))
    with pytest.raises(PackedFormatError, match=rf"{name}' has shape \[47\], expected \[48\]"):
        load_packed(shape_dir)

    dtype_dir = _copy(src, tmp_path / "dtype")
    name2 = "bert.embeddings.layer_norm.weight"
    _rewrite(dtype_dir, lambda t, m: t.__setitem__(name2, t[name2].astype(np.float64)))
    with pytest.raises(PackedFormatError, match=rf"{name2}' has dtype float64, expected float32"):
        load_packed(dtype_dir)

    missing_dir = _copy(src, tmp_path / "missing")
    _rewrite(missing_dir, lambda t, m: t.pop("classifier.bias"))
    with pytest.raises(PackedFormatError, match="missing tensor.*classifier.bias"):
        load_packed(missing_dir)

    extra_dir = _copy(src, tmp_path / "extra")
    _rewrite(extra_dir, lambda t, m: t.__setitem__("surprise", np.zeros(3, np.float32)))
    with pytest.raises(PackedFormatError, match="unexpected tensor.*surprise"):
        load_packed(extra_dir)

    pad_dir = _copy(src, tmp_path / "padding")

    def set_padding(t, m):
        bits = t["bert.encoder.layers.0.linear1.bits"]  # in = 48: bits 48..63 are padding
        bits[0, -1] |= np.uint64(1) << np.uint64(60)
        crcs = json.loads(m["binbert_crc32"])
        crcs["bert.encoder.layers.0.linear1.bits"] = __import__("zlib").crc32(bits.view(np.uint8).reshape(-1))
        m["binbert_crc32"] = json.dumps(crcs)

    _rewrite(pad_dir, set_padding)
    with pytest.raises(PackedFormatError, match="linear1.bits' has non-zero padding bits"):
        load_packed(pad_dir)


def test_config_errors(packed_bit, tmp_path):
    _, src = packed_bit
    with pytest.raises(PackedFormatError, match="no such directory"):
        load_packed(tmp_path / "nothing")
    no_cfg = _copy(src, tmp_path / "nocfg")
    os.remove(no_cfg / "config.json")
    with pytest.raises(PackedFormatError, match=r"config\.json is missing"):
        load_packed(no_cfg)
    bad_cfg = _copy(src, tmp_path / "badcfg")
    (bad_cfg / "config.json").write_text("{ nope")
    with pytest.raises(PackedFormatError, match=r"config\.json is not valid JSON"):
        load_packed(bad_cfg)
    plain = _copy(src, tmp_path / "plain")
    cfg = json.loads((plain / "config.json").read_text())
    del cfg["binbert_packed"]
    (plain / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(PackedFormatError, match="not a packed binbert model"):
        load_packed(plain)
    no_weights = _copy(src, tmp_path / "noweights")
    os.remove(no_weights / "model.safetensors")
    with pytest.raises(PackedFormatError, match=r"model\.safetensors is missing"):
        load_packed(no_weights)
