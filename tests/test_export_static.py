"""Static-graph export: tiny FP classifier, BiBERT-binarized student and QA model run by Paddle Inference
match the dygraph models in eval mode; nothing is patched while exporting; atomic writes and errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification, BertTokenizer

from paddle_binbert import load_checkpoint, quantize_model
from paddle_binbert.export.static import (
    EXPORT_INFO_NAME,
    MODEL_FILE,
    PARAMS_FILE,
    StaticPredictor,
    check_initialized_quantizers,
    export_static,
    folded_weight_quantizers,
    main,
    run_static,
    save_inference_model,
)
from paddle_binbert.quant import functional as QF
from paddle_binbert.quant.calibration import calibrate
from tests.tiny import tiny_bert_config

VOCAB = Path(__file__).resolve().parent / "fixtures" / "vocab.txt"
VOCAB_SIZE = 1353
MAX_POSITIONS = 64


def _config(**kw):
    return tiny_bert_config(vocab_size=VOCAB_SIZE, max_position_embeddings=MAX_POSITIONS, **kw)


def _save(model: paddle.nn.Layer, folder: Path) -> Path:
    model.save_pretrained(str(folder))
    BertTokenizer(vocab_file=str(VOCAB)).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("export_ckpts")
    paddle.seed(11)
    fp = BertForSequenceClassification(_config())
    fp.eval()
    student = BertForSequenceClassification(_config())
    student.set_state_dict(fp.state_dict())
    quantize_model(student, "bibert")
    qa = BertForQuestionAnswering(_config())
    bit = BertForSequenceClassification(_config())
    bit.set_state_dict(fp.state_dict())
    quantize_model(bit, "bit")  # elastic activation scales, set by an explicit calibration
    calibrate(
        bit, [dict(zip(("input_ids", "token_type_ids", "attention_mask"), _padded_inputs(seed=s))) for s in (1, 2)]
    )
    saved = {"fp": fp, "bibert": student, "bit": bit, "qa": qa}
    return {name: _save(model, root / name) for name, model in saved.items()}


def _padded_inputs(seed: int, batch: int = 5, length: int = 19) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random ids with a different real length per row, zero padding and two segments."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB_SIZE, (batch, length)).astype("int64")
    types = np.zeros_like(ids)
    mask = np.ones_like(ids)
    for row, n in enumerate(np.linspace(3, length, batch).astype(int)):
        types[row, n // 2 : n] = 1
        ids[row, n:] = 0
        mask[row, n:] = 0
    return ids, types, mask


def _dygraph(folder: Path, task: str, ids, types, mask):
    model = load_checkpoint(str(folder), task=task)
    model.eval()
    with paddle.no_grad():
        out = model(
            paddle.to_tensor(ids), token_type_ids=paddle.to_tensor(types), attention_mask=paddle.to_tensor(mask)
        )
    if task == "question_answering":
        return tuple(o.numpy() for o in out)
    return out.numpy()


@pytest.mark.parametrize(
    "name,task",
    [
        ("fp", "sequence_classification"),
        ("bibert", "sequence_classification"),
        ("bit", "sequence_classification"),
        ("qa", "question_answering"),
    ],
)
def test_static_export_matches_dygraph(checkpoints, tmp_path, name, task):
    out = tmp_path / f"{name}_static"
    paths = export_static(checkpoints[name], out)
    for key, file in (("model", MODEL_FILE), ("params", PARAMS_FILE), ("export_info", EXPORT_INFO_NAME)):
        assert paths[key] == str(out / file) and os.path.isfile(paths[key])
    assert (out / "config.json").is_file() and (out / "vocab.txt").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folder left behind"
    info = json.loads((out / EXPORT_INFO_NAME).read_text())
    assert info["task"] == task and info["max_seq_length"] == MAX_POSITIONS
    assert info["quant_preset"] == (name if name in ("bibert", "bit") else None)

    ids, types, mask = _padded_inputs(seed=len(name))
    want = _dygraph(checkpoints[name], task, ids, types, mask)
    got = run_static(out, ids, types, mask)
    if task == "question_answering":
        assert isinstance(got, tuple) and len(got) == 2
        for g, w in zip(got, want):
            assert g.shape == w.shape == ids.shape
            np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)
    else:
        assert got.shape == (ids.shape[0], 3)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_unfolded_export_and_onednn_default(checkpoints, tmp_path):
    """Without folding the latent weights are re-quantized in the graph; same outputs. Quantized
    exports run without oneDNN by default (exact sign bits), FP exports with it when available."""
    out = tmp_path / "unfolded"
    export_static(checkpoints["bibert"], out, fold_weights=False)
    ids, types, mask = _padded_inputs(seed=7)
    want = _dygraph(checkpoints["bibert"], "sequence_classification", ids, types, mask)
    predictor = StaticPredictor(out)
    assert predictor.use_onednn is False
    np.testing.assert_allclose(predictor(ids, types, mask), want, atol=1e-5, rtol=0)
    fp = StaticPredictor(export_static(checkpoints["fp"], tmp_path / "fp")["dir"])
    assert fp.use_onednn is bool(paddle.base.core.is_compiled_with_onednn())


def test_predictor_defaults_and_limits(checkpoints, tmp_path):
    out = tmp_path / "fp16"
    export_static(checkpoints["fp"], out, max_seq_length=16)
    predictor = StaticPredictor(out, use_onednn=False)
    ids, types, mask = _padded_inputs(seed=3, batch=3, length=16)
    # attention_mask defaults to ids != pad id, token types to zeros
    np.testing.assert_allclose(predictor(ids, None, None), predictor(ids, np.zeros_like(ids), mask), atol=1e-6)
    np.testing.assert_allclose(predictor(ids[0]), predictor(ids[:1]), atol=0)  # 1-D input is batch 1
    with pytest.raises(ValueError, match="max_seq_length 16"):
        predictor(np.ones((1, 17), dtype="int64"))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        export_static(checkpoints["fp"], tmp_path / "too_long", max_seq_length=MAX_POSITIONS + 1)


def test_export_patches_nothing_and_student_still_trains(checkpoints, tmp_path, monkeypatch):
    student = load_checkpoint(str(checkpoints["bibert"]))
    module_state = dict(vars(QF))
    seen = []

    def save(static, prefix):  # look at the quantizer module while the program is traced and saved
        seen.append({k: v for k, v in vars(QF).items() if module_state.get(k) is not v})
        real_save(static, prefix)

    real_save = paddle.jit.save
    monkeypatch.setattr(paddle.jit, "save", save)
    save_inference_model(student, tmp_path / "inference")
    assert seen == [{}]  # no quantizer function or PyLayer replaced, process-wide or otherwise
    monkeypatch.undo()
    linear = student.bert.encoder.layers[0].linear1
    weight, quantizer, latent = linear.weight, linear.weight_quantizer, linear.weight.numpy()
    with folded_weight_quantizers(student) as n_folded:
        assert n_folded == 2 * 6 + 1 + 1  # 6 linears per layer, pooler, word embedding
        assert linear.weight_quantizer is None and linear.weight is not weight
        np.testing.assert_array_equal(linear.weight.numpy(), quantizer(weight).numpy())
    assert linear.weight is weight and linear.weight_quantizer is quantizer
    np.testing.assert_array_equal(linear.weight.numpy(), latent)
    student.train()
    ids, types, mask = _padded_inputs(seed=5, batch=2, length=8)
    logits = student(
        paddle.to_tensor(ids), token_type_ids=paddle.to_tensor(types), attention_mask=paddle.to_tensor(mask)
    )
    logits.sum().backward()
    grad = student.bert.encoder.layers[0].linear1.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0


def test_uninitialised_activation_quantizer_is_refused():
    paddle.seed(0)
    student = quantize_model(BertForSequenceClassification(_config()), "bit")  # elastic scales never set
    with pytest.raises(ValueError, match="never initialised"):
        check_initialized_quantizers(student)


def test_overwrite_and_packed_folder(checkpoints, tmp_path):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        export_static(checkpoints["fp"], out, overwrite=False)
    assert (out / "keep.txt").is_file()
    packed = tmp_path / "packed"
    packed.mkdir()
    cfg = json.loads((checkpoints["fp"] / "config.json").read_text())
    (packed / "config.json").write_text(json.dumps({**cfg, "binbert_packed": True}))
    with pytest.raises(ValueError, match="packed"):
        export_static(packed, tmp_path / "from_packed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists", "packed"]


def test_cli_export_with_verify(checkpoints, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main([str(checkpoints["bibert"]), str(out), "--verify", "2"]) == 0
    text = capsys.readouterr().out
    assert "exported sequence_classification model (bibert)" in text
    diff = float(text.strip().rsplit("=", 1)[1])
    assert diff < 1e-5
    assert main([str(tmp_path / "missing"), str(tmp_path / "x")]) == 2
