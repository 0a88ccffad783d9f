"""Taskflow on tiny FP and BiBERT-binarized checkpoints: classification against direct model calls,
QA offsets, bare .pdparams folders, the packed-engine hook and the command line."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertConfig, BertForQuestionAnswering, BertForSequenceClassification, BertTokenizer

from paddle_binbert import Taskflow, quantize_model
from paddle_binbert.data.squad import tokenize_with_offsets
from paddle_binbert.inference.cli import predict_main as main
from tests.tiny import tiny_bert_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VOCAB = FIXTURES / "vocab.txt"
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
LONG_TEXT = "the film is long and the story goes on and on " * 20
TEXTS = [
    "a gripping , funny film",
    ("the cat sat on the mat", "a cat is sitting"),
    "",
    LONG_TEXT,
    ["one more pair", "with a list"],
]
MAX_LENGTH = 24


def tiny_config(num_labels: int = 3, **kw) -> BertConfig:
    extra = {"id2label": dict(LABELS)} if num_labels == 3 else {}
    return tiny_bert_config(vocab_size=1353, max_position_embeddings=64, num_labels=num_labels, **{**extra, **kw})


def sharpen(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """Scale the random head so that the tiny model's predictions are far from ties."""
    model.classifier.weight.set_value(model.classifier.weight * 40.0)
    model.eval()
    return model


def save(model: paddle.nn.Layer, folder: Path) -> Path:
    model.save_pretrained(str(folder))
    BertTokenizer(vocab_file=str(VOCAB)).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def cls_dirs(tmp_path_factory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("taskflow")
    paddle.seed(3)
    fp = sharpen(BertForSequenceClassification(tiny_config()))
    binary = BertForSequenceClassification(tiny_config())
    binary.set_state_dict(fp.state_dict())
    quantize_model(binary, "bibert")
    return {"fp": save(fp, root / "fp"), "bibert": save(binary, root / "bibert")}


def direct_logits(model: paddle.nn.Layer, tokenizer, item, max_length: int = MAX_LENGTH) -> np.ndarray:
    """One unpadded forward pass, as a user would write it (no Taskflow code involved)."""
    a, b = (item, None) if isinstance(item, str) else item
    enc = tokenizer(a, text_pair=b, max_length=max_length, truncation=True)
    with paddle.no_grad():
        out = model(
            paddle.to_tensor([enc["input_ids"]], dtype="int64"),
            token_type_ids=paddle.to_tensor([enc["token_type_ids"]], dtype="int64"),
        )
    return out.numpy()[0]


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def check_against_direct(results: List[dict], flow: Taskflow, model, tokenizer, items) -> None:
    assert len(results) == len(items)
    for result, item in zip(results, items):
        assert result["text"] == item
        probs = softmax(direct_logits(model, tokenizer, item).astype("float64"))
        best = int(np.argmax(probs))
        assert result["predictions"][0]["label"] == LABELS[best]
        np.testing.assert_allclose(result["predictions"][0]["score"], probs[best], rtol=0, atol=2e-5)


@pytest.mark.parametrize("kind", ["fp", "bibert"])
def test_classification_single_and_batched_match_direct_call(cls_dirs, kind):
    from paddle_binbert import load_model

    flow = Taskflow("text_classification", task_path=str(cls_dirs[kind]), batch_size=2, max_length=MAX_LENGTH)
    model = load_model(str(cls_dirs[kind]))
    model.eval()  # PaddleNLP's from_pretrained leaves dropout on
    tokenizer = BertTokenizer.from_pretrained(str(cls_dirs[kind]))
    assert len(tokenizer(LONG_TEXT)["input_ids"]) > MAX_LENGTH  # really needs truncation

    batched = flow(TEXTS)
    check_against_direct(batched, flow, model, tokenizer, TEXTS)
    for item, expected in zip(TEXTS, batched):
        single = flow(item if isinstance(item, (str, tuple)) else [item])
        assert len(single) == 1 and single[0]["predictions"][0]["label"] == expected["predictions"][0]["label"]
        np.testing.assert_allclose(single[0]["predictions"][0]["score"], expected["predictions"][0]["score"], atol=1e-6)


def test_top_k_and_id2label_override(cls_dirs):
    flow = Taskflow("text_classification", task_path=str(cls_dirs["fp"]), top_k=5, id2label={0: "a", 1: "b", 2: "c"})
    (result,) = flow("some text")
    scores = [p["score"] for p in result["predictions"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert abs(sum(scores) - 1.0) < 1e-6
    assert {p["label"] for p in result["predictions"]} == {"a", "b", "c"}
    assert flow([]) == []


def test_settings_set_on_the_taskflow_reach_its_task(cls_dirs):
    """``flow.top_k = 2`` changes what the next call returns (the setting lives on ``task_instance``)."""
    flow = Taskflow("text_classification", task_path=str(cls_dirs["fp"]))
    assert len(flow("some text")[0]["predictions"]) == 1
    flow.top_k = 2
    assert flow.task_instance.top_k == 2 and flow.top_k == 2
    assert len(flow("some text")[0]["predictions"]) == 2
    flow.note = "kept on the Taskflow"  # not a task setting
    assert "note" in vars(flow) and not hasattr(flow.task_instance, "note")


def test_regression_checkpoint_returns_score(tmp_path):
    paddle.seed(5)
    model = BertForSequenceClassification(tiny_config(num_labels=1))
    model.eval()
    save(model, tmp_path)
    flow = Taskflow("text_classification", task_path=str(tmp_path), max_length=MAX_LENGTH)
    pair = ("a man is eating food", "someone eats")
    (result,) = flow(pair)
    assert set(result) == {"text", "score"}
    tokenizer = BertTokenizer.from_pretrained(str(tmp_path))
    np.testing.assert_allclose(result["score"], direct_logits(model, tokenizer, pair)[0], atol=1e-5)


def test_errors_name_the_valid_choices(cls_dirs, tmp_path):
    with pytest.raises(ValueError, match="text_classification, question_answering"):
        Taskflow("sentiment", task_path=str(cls_dirs["fp"]))
    with pytest.raises(TypeError, match="top_k"):
        Taskflow("text_classification", task_path=str(cls_dirs["fp"]), topk=2)
    flow = Taskflow("text_classification", task_path=str(cls_dirs["fp"]))
    with pytest.raises(TypeError, match="input 1"):
        flow(["ok", 3])


# ---------------------------------------------------------------------- length configurations (Dynamic-TinyBERT)

LENGTH_CONFIG = (9, 5)


@pytest.mark.parametrize("kind", ["fp", "bibert"])
def test_length_config_matches_drop_and_restore_per_input(cls_dirs, kind):
    from paddle_binbert import load_model
    from paddle_binbert.length_adaptive import length_adaptive_forward

    model = load_model(str(cls_dirs[kind])).eval()
    assert model.config.num_hidden_layers == len(LENGTH_CONFIG)
    tokenizer = BertTokenizer.from_pretrained(str(cls_dirs[kind]))
    flow = Taskflow(
        "text_classification",
        task_path=str(cls_dirs[kind]),
        batch_size=3,
        max_length=MAX_LENGTH,
        length_config="-".join(map(str, LENGTH_CONFIG)),
        top_k=3,
    )
    assert flow.length_config == LENGTH_CONFIG
    full = Taskflow("text_classification", task_path=str(cls_dirs[kind]), max_length=MAX_LENGTH, top_k=3)
    changed = 0
    for item, result, plain in zip(TEXTS, flow(TEXTS), full(TEXTS)):
        a, b = (item, None) if isinstance(item, str) else item
        enc = tokenizer(a, text_pair=b, max_length=MAX_LENGTH, truncation=True)
        with paddle.no_grad():
            out = length_adaptive_forward(
                model,
                paddle.to_tensor([enc["input_ids"]], dtype="int64"),
                token_type_ids=paddle.to_tensor([enc["token_type_ids"]], dtype="int64"),
                length_config=LENGTH_CONFIG,
            )
        probs = softmax(out.logits.numpy()[0].astype("float64"))
        got = {p["label"]: p["score"] for p in result["predictions"]}
        np.testing.assert_allclose([got[LABELS[i]] for i in range(3)], probs, atol=2e-5)
        full_scores = {p["label"]: p["score"] for p in plain["predictions"]}
        changed += not np.allclose([full_scores[LABELS[i]] for i in range(3)], probs, atol=1e-4)
    assert changed > 0  # the budgets cut the longer inputs, so some scores move


def test_length_config_errors(cls_dirs):
    with pytest.raises(ValueError, match="2 layers"):
        Taskflow("text_classification", task_path=str(cls_dirs["fp"]), length_config="9-7-5")
    with pytest.raises(ValueError, match="non-increasing"):
        Taskflow("text_classification", task_path=str(cls_dirs["fp"]), length_config=[4, 9])


def test_qa_length_config_answers_are_context_substrings(qa_dir):
    context = danube_context()
    items = [{"question": q, "context": context} for q in QUESTIONS]
    full = Taskflow("question_answering", task_path=str(qa_dir), max_length=40, doc_stride=8)
    same = Taskflow("question_answering", task_path=str(qa_dir), max_length=40, doc_stride=8, length_config=[40] * 2)
    assert same(items) == full(items)  # budgets >= the window: the plain model
    short = Taskflow("question_answering", task_path=str(qa_dir), max_length=40, doc_stride=8, length_config="30-12")
    for item, result in zip(items, short(items)):
        assert result["answer"] == item["context"][result["start"] : result["end"]]


# ---------------------------------------------------------------------- bare .pdparams in a folder


def test_bare_pdparams_folder_and_params_path(cls_dirs, tmp_path):
    paddle.seed(8)
    model = sharpen(BertForSequenceClassification(tiny_config()))
    folder = tmp_path / "release"
    folder.mkdir()
    model.config.save_pretrained(str(folder))
    BertTokenizer(vocab_file=str(VOCAB)).save_pretrained(str(folder))
    params = folder / "sst-2_ft_model_6315.pdparams.pdparams"
    paddle.save(model.state_dict(), str(params))
    tokenizer = BertTokenizer.from_pretrained(str(folder))

    auto = Taskflow("text_classification", task_path=str(folder), max_length=MAX_LENGTH, top_k=3)
    explicit_dir = tmp_path / "elsewhere"
    explicit_dir.mkdir()
    os.replace(params, explicit_dir / params.name)
    explicit = Taskflow(
        "text_classification",
        task_path=str(folder),
        params_path=str(explicit_dir / params.name),
        max_length=MAX_LENGTH,
        top_k=3,
    )
    for flow in (auto, explicit):
        for item in ("hello there", ("first", "second")):
            (result,) = flow(item)
            probs = softmax(direct_logits(model, tokenizer, item).astype("float64"))
            got = {p["label"]: p["score"] for p in result["predictions"]}
            np.testing.assert_allclose([got[LABELS[i]] for i in range(3)], probs, atol=2e-6)


# ---------------------------------------------------------------------- question answering

QUESTIONS = [
    "Which river in Europe is longer than the Danube?",
    "Where does the Danube rise?",
    "What does UNESCO protect?",
]


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory) -> Path:
    paddle.seed(13)
    model = BertForQuestionAnswering(tiny_config(num_labels=2))
    quantize_model(model, "bibert")
    return save(model, tmp_path_factory.mktemp("qa"))


def danube_context() -> str:
    data = json.loads((FIXTURES / "squad" / "tiny-v1.1.json").read_text(encoding="utf-8"))
    return data["data"][0]["paragraphs"][0]["context"]


def test_qa_answers_are_context_substrings_at_offsets(qa_dir):
    context = danube_context()
    flow = Taskflow("question_answering", task_path=str(qa_dir), max_length=40, batch_size=3, doc_stride=8)
    tokenizer = flow.tokenizer
    assert len(tokenizer.tokenize(context)) > 100  # many windows at max_length 40
    items = [{"question": q, "context": context} for q in QUESTIONS]
    items.append({"question": "Who?", "context": "Ann Lee wrote it in Zürich ☃ in 1990."})
    results = flow(items)
    assert len(results) == len(items)
    for item, result in zip(items, results):
        assert set(result) == {"answer", "score", "start", "end"}
        assert result["answer"], result
        assert result["answer"] == item["context"][result["start"] : result["end"]]
        assert 0.0 < result["score"] <= 1.0
        # the span runs from a token's first character to a token's last one (not just any match of the text)
        spans = tokenize_with_offsets(tokenizer, item["context"])[1]
        assert result["start"] in {a for a, _ in spans} and result["end"] in {b for _, b in spans}
    single = flow(items[0])
    assert single == results[:1]


def test_qa_empty_context_and_bad_input(qa_dir):
    flow = Taskflow("question_answering", task_path=str(qa_dir), max_length=40)
    assert flow({"question": "Who?", "context": ""}) == [{"answer": "", "score": 0.0, "start": 0, "end": 0}]
    with pytest.raises(TypeError, match="question"):
        flow({"context": "no question"})


# ---------------------------------------------------------------------- packed engine hook


def packed_copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    cfg = json.loads((src / "config.json").read_text())
    cfg["binbert_packed"] = True
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_packed_model_uses_engine_load(cls_dirs, tmp_path, monkeypatch):
    from paddle_binbert import load_model

    packed = packed_copy(cls_dirs["bibert"], tmp_path / "packed")
    calls: List[str] = []

    def fake_load(path: str):
        calls.append(path)
        return load_model(str(cls_dirs["bibert"])).eval()

    monkeypatch.setitem(sys.modules, "paddle_binbert.engine", types.SimpleNamespace(load=fake_load))
    flow = Taskflow("text_classification", task_path=str(packed), max_length=MAX_LENGTH)
    reference = Taskflow("text_classification", task_path=str(cls_dirs["bibert"]), max_length=MAX_LENGTH)
    assert calls == [str(packed)]
    assert flow(TEXTS[:3]) == reference(TEXTS[:3])


def test_packed_model_without_engine_is_a_clear_error(cls_dirs, tmp_path, monkeypatch):
    packed = packed_copy(cls_dirs["bibert"], tmp_path / "packed")
    monkeypatch.setitem(sys.modules, "paddle_binbert.engine", None)
    with pytest.raises(RuntimeError, match="paddle_binbert.engine"):
        Taskflow("text_classification", task_path=str(packed))


# ---------------------------------------------------------------------- command line


def test_command_line(cls_dirs, tmp_path, capsys):
    inputs = tmp_path / "in.txt"
    inputs.write_text('first text\nleft\tright\n["json", "pair"]\n', encoding="utf-8")
    code = main(["text_classification", "--task_path", str(cls_dirs["fp"]), "--input", str(inputs), "plain"])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in lines] == ["plain", "first text", ["left", "right"], ["json", "pair"]]
    flow = Taskflow("text_classification", task_path=str(cls_dirs["fp"]))
    expected: Optional[list] = flow(["plain", "first text", ("left", "right"), ("json", "pair")])
    assert [r["predictions"] for r in lines] == [r["predictions"] for r in expected]


def test_command_line_length_config(cls_dirs, capsys):
    long_input = LONG_TEXT.strip()
    code = main(["text_classification", "--task_path", str(cls_dirs["fp"]), "--length_config", "9-5", long_input])
    assert code == 0
    (line,) = [json.loads(out) for out in capsys.readouterr().out.splitlines()]
    flow = Taskflow("text_classification", task_path=str(cls_dirs["fp"]), length_config=(9, 5))
    assert line == flow(long_input)[0]
    assert main(["text_classification", "--task_path", str(cls_dirs["fp"]), "--length_config", "5-9", "x"]) == 2
    assert "non-increasing" in capsys.readouterr().err
