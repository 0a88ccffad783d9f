"""BiT / BinaryBERT quantized PyTorch checkpoints: our students exported to the reference key layout
(an inverse mapping written here, independently of paddle_binbert.checkpoints.reference), loaded back by
load_checkpoint with equal logits; unmappable quantizers, missing / unexpected / misshaped keys reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification
from safetensors.numpy import save_file

from paddle_binbert import QuantConfig, load_checkpoint
from paddle_binbert.checkpoints import ReferenceQuantError
from tests.engine import make_student, random_batch, rel_err, simulated_output, tiny_config

BIT_FLAGS = dict(
    weight_bits=1,
    input_bits=1,
    weight_quant_method="bwn",
    input_quant_method="elastic",
    sym_quant_qkvo=True,
    sym_quant_ffn_attn=False,
    weight_layerwise=True,
    embed_layerwise=False,
    input_layerwise=True,
    not_quantize_attention=False,
)
HF_LINEARS = {
    "self_attn.q_proj": "attention.self.query",
    "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value",
    "self_attn.out_proj": "attention.output.dense",
    "linear1": "intermediate.dense",
    "linear2": "output.dense",
}
HF_SCALES = {"query_quantizer": "clip_query", "key_quantizer": "clip_key", "value_quantizer": "clip_value"}


def _np(t) -> np.ndarray:
    return np.asarray(t.numpy(), dtype=np.float32)


def _scale_of(quantizer) -> np.ndarray:
    """The reference tensor of one activation quantizer: a 0-d scale, or the [-c, c] clip pair."""
    if hasattr(quantizer, "alpha"):
        return np.array(_np(quantizer.alpha)[0], np.float32)
    if hasattr(quantizer, "step"):
        return np.array(_np(quantizer.step)[0], np.float32)
    c = float(_np(quantizer.clip_val)[0])
    return np.array([-c, c], np.float32)


def to_reference(student, family: str) -> Dict[str, np.ndarray]:
    """Our quantized student as a BiT / BinaryBERT PyTorch state dict (torch [out, in] Linear weights)."""
    bert, out = student.bert, {}
    emb = bert.embeddings
    word = emb.word_embeddings
    if family == "bit":  # BiT centres on the table mean: export the binarized rows, which it maps to themselves
        with paddle.no_grad():
            table = word.weight_quantizer(word.weight.reshape([1] + list(word.weight.shape)))
        out["bert.embeddings.word_embeddings.weight"] = _np(table).reshape(word.weight.shape)
    else:
        out["bert.embeddings.word_embeddings.weight"] = _np(word.weight)
    out["bert.embeddings.position_embeddings.weight"] = _np(emb.position_embeddings.weight)
    out["bert.embeddings.token_type_embeddings.weight"] = _np(emb.token_type_embeddings.weight)
    out["bert.embeddings.LayerNorm.weight"] = _np(emb.layer_norm.weight)
    out["bert.embeddings.LayerNorm.bias"] = _np(emb.layer_norm.bias)

    def linear(prefix: str, layer) -> None:
        out[f"{prefix}.weight"] = _np(layer.weight).T.copy()
        out[f"{prefix}.bias"] = _np(layer.bias)
        out[f"{prefix}.input_clip_val"] = _scale_of(layer.input_quantizer)
        if family == "bit":
            out[f"{prefix}.move.bias"] = -_np(layer.input_quantizer.beta)

    for i, layer in enumerate(bert.encoder.layers):
        pre = f"bert.encoder.layer.{i}"
        for ours, ref in HF_LINEARS.items():
            sub = layer
            for part in ours.split("."):
                sub = getattr(sub, part)
            linear(f"{pre}.{ref}", sub)
        attn = layer.self_attn
        for ours, ref in HF_SCALES.items():
            out[f"{pre}.attention.self.{ref}"] = _scale_of(getattr(attn, ours))
        out[f"{pre}.attention.self.clip_attn"] = _scale_of(attn.prob_quantizer)
        if family == "bit":  # computed but unused by BiT's forward pass
            for m in ("move_q", "move_k", "move_v"):
                out[f"{pre}.attention.self.{m}.bias"] = np.full([attn.embed_dim], 0.3, np.float32)
        out[f"{pre}.attention.output.LayerNorm.weight"] = _np(layer.norm1.weight)
        out[f"{pre}.attention.output.LayerNorm.bias"] = _np(layer.norm1.bias)
        out[f"{pre}.output.LayerNorm.weight"] = _np(layer.norm2.weight)
        out[f"{pre}.output.LayerNorm.bias"] = _np(layer.norm2.bias)
    linear("bert.pooler.dense", bert.pooler.dense)
    head = "classifier" if isinstance(student, BertForSequenceClassification) else "qa_outputs"
    out[f"{head}.weight"] = _np(student.classifier.weight).T.copy()
    out[f"{head}.bias"] = _np(student.classifier.bias)
    return out


def write_reference(folder: Path, state: Dict[str, np.ndarray], student, flags: dict) -> Path:
    """A reference-style checkpoint folder: config.json (BERT fields + quantization flags) + model.safetensors."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = student.config
    config = {
        k: getattr(cfg, k)
        for k in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
            "hidden_act",
        )
    }
    config.update(flags)
    (folder / "config.json").write_text(json.dumps(config))
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder


def bit_student(cls):
    """A trained-looking BiT student whose Q/K/V/probability quantizers have no shift (as in BiT)."""
    student = make_student("bit", cls)
    for layer in student.bert.encoder.layers:
        for name in ("query_quantizer", "key_quantizer", "value_quantizer", "prob_quantizer"):
            q = getattr(layer.self_attn, name)
            q.beta.set_value(paddle.zeros_like(q.beta))
    return student


def assert_same_logits(student, loaded) -> None:
    for batch, seq, seed in [(3, 12, 5), (1, 1, 7), (2, 30, 8)]:
        ids, types = random_batch(batch, seq, seed=seed)
        assert rel_err(simulated_output(loaded, ids, types), simulated_output(student, ids, types)) < 1e-5


# ------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForQuestionAnswering])
def test_bit_round_trip(tmp_path, cls, caplog):
    student = bit_student(cls)
    folder = write_reference(tmp_path / "bit", to_reference(student, "bit"), student, BIT_FLAGS)
    task = "sequence_classification" if cls is BertForSequenceClassification else "question_answering"
    with caplog.at_level("INFO", logger="paddle_binbert.checkpoints"):
        loaded = load_checkpoint(folder, task=task)
    assert loaded.config.binbert_quant_config["name"] == "bit"
    assert_same_logits(student, loaded)
    log = caplog.text
    assert "move_q.bias" in log and "word_embeddings.weight" in log  # ignored / folded, and said so
    # the loaded student's quantizers are initialised: a train-mode batch does not reset them
    q = loaded.bert.encoder.layers[0].linear1.input_quantizer
    assert float(q.initialized.numpy()[0]) == 1.0
    # a bare weight file with config= works the same
    bare = load_checkpoint(folder / "model.safetensors", task=task, config=str(folder / "config.json"))
    assert_same_logits(student, bare)


def test_bit_flags_default_to_the_release(tmp_path):
    """Without quantization flags in config.json, BiT's command-line defaults apply."""
    student = bit_student(BertForSequenceClassification)
    folder = write_reference(tmp_path / "bit", to_reference(student, "bit"), student, {})
    assert_same_logits(student, load_checkpoint(folder))


@pytest.mark.parametrize("preset,flags", [("binarybert", (1, "bwn")), ("binarybert_ternary", (2, "twn"))])
def test_binarybert_round_trip(tmp_path, preset, flags):
    """BinaryBERT A4 (LSQ, ReLU): asymmetric probability / FFN2 quantizers are refused unless approximated."""
    paddle.seed(1)
    cfg = tiny_config()
    cfg.hidden_act = "relu"
    student = make_student(preset, BertForSequenceClassification, config=cfg)
    wbits, method = flags
    ref_flags = dict(weight_bits=wbits, weight_quant_method=method, input_bits=4, input_quant_method="lsq")
    folder = write_reference(tmp_path / preset, to_reference(student, "binarybert"), student, ref_flags)
    with pytest.raises(ReferenceQuantError) as err:
        load_checkpoint(folder)
    msg = str(err.value)
    assert "encoder.layer.0.attention.self.clip_attn" in msg and "encoder.layer.1.output.dense.input_clip_val" in msg
    assert "asymmetric lsq" in msg and "allow_approximate=True" in msg
    assert "clip_query" not in msg  # symmetric sites map exactly
    loaded = load_checkpoint(folder, allow_approximate=True)
    assert loaded.config.binbert_quant_config["name"] == preset
    assert_same_logits(student, loaded)


def test_binarybert_uniform_a8_exact(tmp_path):
    """BinaryBERT A8 with --sym_quant_ffn_attn: symmetric uniform clips [-c, c] map to uniform_clip exactly."""
    qc = QuantConfig(
        weight_bits=1,
        embedding_bits=1,
        activation_bits=8,
        weight_quantizer="bwn",
        embedding_quantizer="bwn",
        activation_quantizer="uniform_clip",
        attention="quant",
        name="w1a8",
    )
    student = make_student(qc, BertForQuestionAnswering)
    for name, param in student.named_parameters():
        if name.endswith("clip_val"):
            param.set_value(paddle.rand(param.shape) + 1.0)
    ref_flags = dict(
        weight_bits=1, weight_quant_method="bwn", input_bits=8, input_quant_method="uniform", sym_quant_ffn_attn=True
    )
    folder = write_reference(tmp_path / "a8", to_reference(student, "binarybert"), student, ref_flags)
    loaded = load_checkpoint(folder, task="qa")
    assert loaded.config.binbert_quant_config["activation_quantizer"] == "uniform_clip"
    assert_same_logits(student, loaded)
    # a learned asymmetric clip range has no counterpart
    state = to_reference(student, "binarybert")
    state["bert.encoder.layer.0.intermediate.dense.input_clip_val"] = np.array([-2.0, 2.5], np.float32)
    write_reference(tmp_path / "asym", state, student, ref_flags)
    with pytest.raises(ReferenceQuantError, match=r"intermediate\.dense\.input_clip_val: clip range \[-2\.0, 2\.5\]"):
        load_checkpoint(tmp_path / "asym", task="qa")


# ------------------------------------------------------------------------------------- mismatches
def test_reference_mismatches_are_listed(tmp_path):
    student = bit_student(BertForSequenceClassification)
    good = to_reference(student, "bit")

    def load(state, flags=BIT_FLAGS, name="x"):
        return load_checkpoint(write_reference(tmp_path / name, state, student, flags))

    state = dict(good)
    del state["bert.encoder.layer.1.intermediate.dense.move.bias"]
    state["bert.encoder.layer.0.attention.self.query.weight_clip_val"] = np.array(1.0, np.float32)
    with pytest.raises(ReferenceQuantError) as err:
        load(state, name="a")
    msg = str(err.value)
    assert "missing bert.encoder.layer.1.intermediate.dense.move.bias" in msg
    assert "query.weight_clip_val: learnable weight quantizers" in msg

    state = dict(good)
    state["bert.encoder.layer.0.output.dense.bias"] = np.zeros([7], np.float32)
    state["bert.encoder.layer.0.attention.self.extra.weight"] = np.zeros([3], np.float32)
    del state["bert.encoder.layer.1.output.LayerNorm.bias"]
    with pytest.raises(ValueError) as err:
        load(state, name="b")
    msg = str(err.value)
    assert "missing (1): bert.encoder.layers.1.norm2.bias" in msg
    assert "unexpected (1): bert.encoder.layer.0.attention.self.extra.weight" in msg
    assert "bert.encoder.layers.0.linear2.bias: checkpoint [7] vs model [48]" in msg

    # semantics that differ: signed FFN2 elastic input vs our post-ReLU unsigned one; full-precision attention
    with pytest.raises(ReferenceQuantError, match=r"output\.dense\.input_clip_val: the reference uses a symmetric"):
        load(good, {**BIT_FLAGS, "sym_quant_ffn_attn": True}, name="c")
    with pytest.raises(ReferenceQuantError, match="not_quantize_attention"):
        load(good, {**BIT_FLAGS, "not_quantize_attention": True}, name="d")
    # per-row linear weights cannot be reproduced by a per-matrix quantizer
    with pytest.raises(ReferenceQuantError, match=r"attention\.self\.query\.weight: the reference bwn quantizer"):
        load(good, {**BIT_FLAGS, "weight_layerwise": False}, name="e")
    # an embedding row whose binarized signs are all equal cannot be reproduced by a per-row centring quantizer
    state = dict(good)
    table = state["bert.embeddings.word_embeddings.weight"].copy()
    table[4] = -0.5  # all signs -1 (exact row mean): our per-row centring gives +1
    state["bert.embeddings.word_embeddings.weight"] = table
    with pytest.raises(ReferenceQuantError, match=r"word_embeddings\.weight.*rows \[4\]"):
        load(state, name="f")
    # BinaryBERT flags have no defaults for the bit widths
    plain = {k: v for k, v in good.items() if ".move." not in k and "move_" not in k}
    with pytest.raises(ReferenceQuantError, match="lacks"):
        load(plain, {}, name="g")


def test_pytorch_bin_reference(tmp_path):
    torch = pytest.importorskip("torch")
    student = bit_student(BertForSequenceClassification)
    folder = tmp_path / "bin"
    write_reference(folder, to_reference(student, "bit"), student, BIT_FLAGS)
    (folder / "model.safetensors").unlink()
    state = {k: torch.from_numpy(v) for k, v in to_reference(student, "bit").items()}
    torch.save(state, folder / "pytorch_model.bin")
    assert_same_logits(student, load_checkpoint(folder))
