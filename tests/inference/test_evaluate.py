"""evaluate_glue / evaluate_squad on the tiny fixtures against direct model loops, for FP, BiBERT,
static-export and (faked) packed folders; errors and the command line."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification, BertTokenizer

from paddle_binbert import load_checkpoint, quantize_model
from paddle_binbert.data.glue import read_glue_examples
from paddle_binbert.data.squad import load_squad_json, squad_evaluate
from paddle_binbert.export.static import export_static
from paddle_binbert.inference.cli import eval_main as main
from paddle_binbert.inference.evaluate import evaluate_glue, evaluate_squad, glue_predictions
from paddle_binbert.inference.predictor import load_predictor
from tests.tiny import tiny_bert_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SST2 = FIXTURES / "glue" / "SST-2"
SQUAD = FIXTURES / "squad" / "tiny-v1.1.json"
SQUAD_KW = dict(max_seq_length=48, doc_stride=16, max_query_length=12)


def _save(model: paddle.nn.Layer, folder: Path, vocab: Path) -> Path:
    model.save_pretrained(str(folder))
    BertTokenizer(vocab_file=str(vocab)).save_pretrained(str(folder))
    return folder


def _balance(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """Shift the classifier bias so that the random model predicts both classes on the SST-2 fixture,
    with the decision threshold in the widest gap near the median (far from ties)."""
    model.eval()
    tokenizer = BertTokenizer(vocab_file=str(FIXTURES / "vocab.txt"))
    diffs = []
    for ex in read_glue_examples(SST2, "SST-2", "dev"):
        enc = tokenizer(ex.text_a)
        with paddle.no_grad():
            logits = model(
                paddle.to_tensor([enc["input_ids"]]), token_type_ids=paddle.to_tensor([enc["token_type_ids"]])
            )
        diffs.append(float(logits[0, 0] - logits[0, 1]))
    diffs = sorted(diffs)
    n = len(diffs)
    k = max(range(n // 3, 2 * n // 3 + 1), key=lambda i: diffs[i] - diffs[i - 1])
    threshold = (diffs[k - 1] + diffs[k]) / 2
    bias = model.classifier.bias.numpy()
    bias[0] -= threshold
    model.classifier.bias.set_value(bias)
    return model


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    paddle.seed(5)
    cfg = dict(vocab_size=1353, max_position_embeddings=64, num_labels=2)
    fp = BertForSequenceClassification(tiny_bert_config(**cfg))
    student = BertForSequenceClassification(tiny_bert_config(**cfg))
    student.set_state_dict(fp.state_dict())
    quantize_model(student, "bibert")
    qa = BertForQuestionAnswering(tiny_bert_config(vocab_size=163, max_position_embeddings=64))
    out = {
        "fp": _save(_balance(fp), root / "fp", FIXTURES / "vocab.txt"),
        "bibert": _save(_balance(student), root / "bibert", FIXTURES / "vocab.txt"),
        "qa": _save(qa, root / "qa", FIXTURES / "squad" / "vocab.txt"),
    }
    out["static"] = Path(export_static(out["fp"], root / "fp_static")["dir"])
    return out


def direct_logits(folder: Path, max_examples=None) -> Tuple[np.ndarray, np.ndarray]:
    """One unpadded forward pass per dev example, in file order (no evaluate.py code involved)."""
    model = load_checkpoint(str(folder))
    tokenizer = BertTokenizer.from_pretrained(str(folder))
    examples = read_glue_examples(SST2, "SST-2", "dev")[:max_examples]
    rows = []
    for ex in examples:
        enc = tokenizer(ex.text_a, max_length=128, truncation=True)
        with paddle.no_grad():
            logits = model(
                paddle.to_tensor([enc["input_ids"]]), token_type_ids=paddle.to_tensor([enc["token_type_ids"]])
            )
        rows.append(logits.numpy()[0])
    return np.stack(rows), np.array([ex.label for ex in examples])


def direct_accuracy(folder: Path, max_examples=None) -> float:
    logits, labels = direct_logits(folder, max_examples)
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


@pytest.mark.parametrize("name", ["fp", "bibert"])
def test_glue_accuracy_equals_direct_loop(dirs, name):
    want_logits, want_labels = direct_logits(dirs[name])
    assert len(set(np.argmax(want_logits, axis=-1))) == 2  # the tiny model predicts both classes
    logits, labels = glue_predictions(str(dirs[name]), "SST-2", str(SST2), batch_size=4)
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_allclose(logits, want_logits, atol=1e-5, rtol=0)  # back in file order
    metrics = evaluate_glue(str(dirs[name]), "SST-2", str(SST2), batch_size=4)
    assert set(metrics) == {"acc"}
    assert metrics["acc"] == direct_accuracy(dirs[name])
    assert evaluate_glue(str(dirs[name]), "sst2", str(SST2), batch_size=1, max_examples=5)["acc"] == direct_accuracy(
        dirs[name], 5
    )


def test_glue_static_and_packed_folders(dirs, tmp_path, monkeypatch):
    want = direct_accuracy(dirs["fp"])
    assert load_predictor(dirs["static"]).kind == "static"
    assert evaluate_glue(str(dirs["static"]), "SST-2", str(SST2), batch_size=3)["acc"] == want

    packed = tmp_path / "packed"
    shutil.copytree(dirs["fp"], packed)
    cfg = json.loads((packed / "config.json").read_text())
    (packed / "config.json").write_text(json.dumps({**cfg, "binbert_packed": True}))
    model = load_checkpoint(str(dirs["fp"]))

    class FakeEngine:  # the engine's calling convention: numpy in, numpy logits out
        config = model.config

        def __call__(self, ids, token_type_ids=None, attention_mask=None):
            with paddle.no_grad():
                return model(
                    paddle.to_tensor(ids),
                    token_type_ids=paddle.to_tensor(token_type_ids),
                    attention_mask=paddle.to_tensor(attention_mask),
                ).numpy()

    calls = []
    monkeypatch.setitem(
        sys.modules, "paddle_binbert.engine", types.SimpleNamespace(load=lambda p: calls.append(p) or FakeEngine())
    )
    predictor = load_predictor(packed)
    assert predictor.kind == "packed" and calls == [str(packed)]
    assert evaluate_glue(str(packed), "SST-2", str(SST2), predictor=predictor)["acc"] == want


def test_glue_errors(dirs, tmp_path):
    with pytest.raises(ValueError, match="SST-2"):
        evaluate_glue(str(dirs["fp"]), "SST-3", str(SST2))
    with pytest.raises(FileNotFoundError, match="dev.tsv"):
        evaluate_glue(str(dirs["fp"]), "SST-2", str(tmp_path))
    with pytest.raises(FileNotFoundError):
        evaluate_glue(str(tmp_path / "nope"), "SST-2", str(SST2))
    with pytest.raises(ValueError, match="needs 3"):
        evaluate_glue(str(dirs["fp"]), "MNLI", str(FIXTURES / "glue" / "MNLI"), max_examples=2)


def test_squad_metrics_match_its_predictions(dirs, tmp_path):
    out = tmp_path / "preds"
    metrics = evaluate_squad(str(dirs["qa"]), str(SQUAD), batch_size=4, output_dir=str(out), **SQUAD_KW)
    assert set(metrics) == {"exact_match", "f1"}
    assert all(0.0 <= v <= 100.0 for v in metrics.values())
    predictions = json.loads((out / "predictions.json").read_text())
    assert len(predictions) == 11
    assert squad_evaluate(load_squad_json(SQUAD), predictions) == metrics
    # batching by length must not change anything: one window per batch gives the same answers
    out1 = tmp_path / "preds1"
    assert evaluate_squad(str(dirs["qa"]), str(SQUAD), batch_size=1, output_dir=str(out1), **SQUAD_KW) == metrics
    assert json.loads((out1 / "predictions.json").read_text()) == predictions
    # the static export of the QA model gives the same answers
    static = export_static(dirs["qa"], tmp_path / "qa_static")["dir"]
    out2 = tmp_path / "preds2"
    assert evaluate_squad(static, str(SQUAD), batch_size=4, output_dir=str(out2), **SQUAD_KW) == metrics
    assert json.loads((out2 / "predictions.json").read_text()) == predictions
    # a prefix of the file is scored on its own questions only
    first = evaluate_squad(str(dirs["qa"]), str(SQUAD), max_examples=3, output_dir=str(tmp_path / "p3"), **SQUAD_KW)
    sub = json.loads((tmp_path / "p3" / "predictions.json").read_text())
    assert list(sub) == ["dan-1", "dan-2", "dan-3"] and all(sub[k] == predictions[k] for k in sub)
    dataset = load_squad_json(SQUAD)
    for article in dataset["data"]:
        for paragraph in article["paragraphs"]:
            paragraph["qas"] = [qa for qa in paragraph["qas"] if qa["id"] in sub]
    assert first == squad_evaluate(dataset, sub)


def test_squad_errors(dirs, tmp_path):
    with pytest.raises(FileNotFoundError):
        evaluate_squad(str(dirs["qa"]), str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="question_answering"):
        evaluate_squad(str(dirs["fp"]), str(SQUAD), **SQUAD_KW)


def test_cli(dirs, capsys):
    assert main(["--task_name", "SST-2", "--data_dir", str(SST2), "--checkpoint", str(dirs["fp"])]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "SST-2" and result["acc"] == direct_accuracy(dirs["fp"])
    args = ["--task_name", "squad", "--data_file", str(SQUAD), "--checkpoint", str(dirs["qa"])]
    assert main(args + ["--max_seq_length", "48", "--doc_stride", "16", "--max_query_length", "12"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "squad" and 0.0 <= result["f1"] <= 100.0
    assert main(["--task_name", "nope", "--data_dir", str(SST2), "--checkpoint", str(dirs["fp"])]) == 2
    assert "SST-2" in capsys.readouterr().err
    assert main(["--task_name", "SST-2", "--data_dir", "/nonexistent", "--checkpoint", str(dirs["fp"])]) == 2
    with pytest.raises(SystemExit):
        main(["--task_name", "squad", "--checkpoint", str(dirs["qa"])])  # --data_file missing
