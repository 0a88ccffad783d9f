"""runtime.Predictor against paddle_binbert.Taskflow on the same packed folders: the same result
dicts (labels, scores, answers, offsets) for classification (texts, pairs, truncation, top_k, length
configurations) and question answering (many windows per context)."""

import json
from pathlib import Path

import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification, BertTokenizer

from paddle_binbert import Taskflow, runtime
from paddle_binbert.export import pack_model
from tests.engine import make_student, tiny_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VOCAB = FIXTURES / "vocab.txt"
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
TEXTS = [
    "a gripping , funny film",
    ("the cat sat on the mat", "a cat is sitting"),
    "",
    "the film is long and the story goes on and on " * 20,
    ["one more pair", "with a list"],
    "Zürich ☃ naïve CAFÉ !!",
]
QUESTIONS = [
    "Which river in Europe is longer than the Danube?",
    "Where does the Danube rise?",
    "What does UNESCO protect?",
]


def _vocab_size() -> int:
    return len(BertTokenizer(vocab_file=str(VOCAB)).vocab)


def _pack(student, folder: Path, id2label=None) -> Path:
    tokenizer = BertTokenizer(vocab_file=str(VOCAB))
    folder = pack_model(student, folder, tokenizer=tokenizer)
    if id2label is not None:
        (folder / "id2label.json").write_text(json.dumps(id2label), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def cls_folder(tmp_path_factory, lib, ops):
    config = tiny_config(hidden=64, heads=4, inter=96, layers=3, vocab=_vocab_size(), max_pos=64)
    student = make_student("bit", BertForSequenceClassification, config=config)
    student.classifier.weight.set_value(student.classifier.weight * 40.0)  # predictions far from ties
    return _pack(student, tmp_path_factory.mktemp("cls") / "packed", id2label={str(k): v for k, v in LABELS.items()})


@pytest.fixture(scope="module")
def qa_folder(tmp_path_factory, lib, ops):
    config = tiny_config(hidden=48, heads=4, inter=80, layers=2, vocab=_vocab_size(), max_pos=64)
    student = make_student("bibert", BertForQuestionAnswering, config=config)
    return _pack(student, tmp_path_factory.mktemp("qa") / "packed")


def _danube() -> str:
    data = json.loads((FIXTURES / "squad" / "tiny-v1.1.json").read_text(encoding="utf-8"))
    return data["data"][0]["paragraphs"][0]["context"]


@pytest.mark.parametrize(
    "options",
    [
        dict(max_length=24),
        dict(max_length=24, batch_size=2, top_k=3),
        dict(max_length=64, batch_size=1),
        dict(max_length=500),  # capped at the model's 64 positions
        dict(max_length=32, length_config="20-12-6"),
        dict(max_length=32, length_config=[32, 32, 32], id2label={0: "a", 1: "b", 2: "c"}),
    ],
)
def test_classification_equals_taskflow(cls_folder, options):
    flow = Taskflow("text_classification", task_path=str(cls_folder), **options)
    predictor = runtime.Predictor(cls_folder, **options)
    assert predictor.task == "text_classification" and predictor.max_length == flow.max_length
    expected = flow(TEXTS)
    assert predictor(TEXTS) == expected
    assert predictor(TEXTS[0]) == flow(TEXTS[0])
    assert predictor(TEXTS[1]) == flow(TEXTS[1])  # a tuple is one pair
    labels = {p["label"] for r in expected for p in r["predictions"]}
    assert labels <= set(options.get("id2label", LABELS).values())


def test_qa_equals_taskflow(qa_folder):
    context = _danube()
    items = [{"question": q, "context": context} for q in QUESTIONS]
    items.append({"question": "Who?", "context": "Ann Lee wrote it in Zürich ☃ in 1990."})
    items.append({"question": "Who?", "context": ""})
    for options in (dict(max_length=40, batch_size=3, doc_stride=8), dict(max_length=64, n_best_size=5)):
        flow = Taskflow("question_answering", task_path=str(qa_folder), **options)
        predictor = runtime.Predictor(qa_folder, **options)
        assert predictor.task == "question_answering"
        expected = flow(items)
        assert predictor(items) == expected
        assert predictor(items[0]) == expected[:1]
        for item, result in zip(items, expected):
            assert result["answer"] == item["context"][result["start"] : result["end"]]


def test_bad_options_and_inputs(cls_folder, qa_folder):
    with pytest.raises(TypeError, match="unknown option"):
        runtime.Predictor(cls_folder, doc_stride=3)
    with pytest.raises(ValueError, match="batch_size"):
        runtime.Predictor(cls_folder, batch_size=0)
    with pytest.raises(ValueError, match="non-increasing"):
        runtime.Predictor(cls_folder, length_config="3-5-1")
    predictor = runtime.Predictor(cls_folder)
    with pytest.raises(TypeError, match="pair of strings"):
        predictor([1])
    with pytest.raises(TypeError, match="question"):
        runtime.Predictor(qa_folder)({"context": "no question"})


def test_folder_without_tokenizer_is_a_clear_error(tmp_path, lib):
    student = make_student("bwn", BertForSequenceClassification)
    folder = pack_model(student, tmp_path / "packed")
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        runtime.Predictor(folder)
