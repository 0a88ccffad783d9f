"""Fault sweep (issue 25), items 11 and 14: the SQuAD evaluator refuses what it cannot score.

Non-string predictions (``["gold"]``, ``{"text": "gold"}``, ``null``, numbers) are errors naming the
question id instead of being scored through ``str()``; a data file without ``paragraphs`` names the
file and the article; a non-UTF-8 data file names the file (evaluator, ``evaluate_squad`` and the
SQuAD fine-tuning script's data loading).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paddle_binbert.data.squad import SquadFormatError, load_squad_json, read_squad_examples, squad_evaluate
from paddle_binbert.data.squad.__main__ import main as squad_cli
from paddle_binbert.inference.evaluate import evaluate_squad

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "squad"
TINY = FIXTURES / "tiny-v1.1.json"


def dataset(golds):
    qas = [{"id": qid, "question": "?", "answers": [{"text": g, "answer_start": 0} for g in gs]} for qid, gs in golds]
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "gold", "qas": qas}]}]}


GOLD = dataset([("q1", ["gold"]), ("q2", ["silver"])])


def test_string_predictions_still_score():
    assert squad_evaluate(GOLD, {"q1": "gold", "q2": "silver"}) == {"exact_match": 100.0, "f1": 100.0}


@pytest.mark.parametrize(
    "value, kind",
    [(["gold"], "a list"), ({"text": "gold"}, "an object"), (None, "null"), (3, "a number"), (True, "a boolean")],
)
def test_non_string_prediction_names_the_question(value, kind):
    with pytest.raises(SquadFormatError) as info:
        squad_evaluate(GOLD, {"q1": value, "q2": "silver"}, predictions_source="preds.json")
    message = str(info.value)
    assert message.startswith("preds.json: ") and "should be a string" in message
    assert f"question id 'q1' ({kind}" in message


def test_cli_rejects_non_string_prediction(tmp_path, capsys):
    preds = tmp_path / "predictions.json"
    preds.write_text(json.dumps({"dan-1": ["the Volga"]}), encoding="utf-8")
    assert squad_cli([str(TINY), str(preds)]) == 1
    err = capsys.readouterr().err
    assert str(preds) in err and "'dan-1' (a list" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "edit, where",
    [
        (lambda d: d["data"][1].pop("paragraphs"), "article 1: missing key 'paragraphs'"),
        (lambda d: d["data"][0]["paragraphs"][0].pop("qas"), "article 0, paragraph 0: missing key 'qas'"),
        (lambda d: d["data"][0]["paragraphs"][0]["qas"][1].pop("answers"), "question id 'dan-2': missing key"),
        (lambda d: d["data"][0].update(paragraphs="text"), "article 0: key 'paragraphs' should be of type list"),
    ],
)
def test_malformed_dataset_names_file_and_article(tmp_path, capsys, edit, where):
    data = json.loads(TINY.read_text(encoding="utf-8"))
    assert len(data["data"]) >= 2
    edit(data)
    with pytest.raises(SquadFormatError, match="^data.json: article"):
        squad_evaluate(data, {}, source="data.json")
    bad = tmp_path / "dev.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    preds = tmp_path / "predictions.json"
    preds.write_text("{}", encoding="utf-8")
    assert squad_cli([str(bad), str(preds)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and where in err and "Traceback" not in err


def non_utf8_copy(tmp_path: Path) -> Path:
    raw = TINY.read_bytes()
    cut = raw.index(b"Danube", 200)
    bad = tmp_path / "latin1.json"
    bad.write_bytes(raw[:cut] + "Donau\u00e9".encode("latin-1") + raw[cut + 6 :])
    return bad


def test_non_utf8_data_file_names_the_file(tmp_path, capsys):
    bad = non_utf8_copy(tmp_path)
    for read in (load_squad_json, read_squad_examples):
        with pytest.raises(SquadFormatError, match="expected UTF-8 JSON, invalid byte") as info:
            read(bad)
        assert str(bad) in str(info.value) and "line " in str(info.value)
    preds = tmp_path / "predictions.json"
    preds.write_text("{}", encoding="utf-8")
    assert squad_cli([str(bad), str(preds)]) == 1
    assert str(bad) in capsys.readouterr().err
    # paddle-binbert eval reads the data before it loads the model: the checkpoint is never needed
    with pytest.raises(SquadFormatError, match=str(bad)):
        evaluate_squad(str(tmp_path / "no-checkpoint"), bad)


def test_non_utf8_or_missing_predictions_file(tmp_path, capsys):
    preds = tmp_path / "predictions.json"
    preds.write_bytes(b'{"dan-1": "caf\xe9"}')
    assert squad_cli([str(TINY), str(preds)]) == 1
    assert f"{preds}: expected UTF-8" in capsys.readouterr().err
    assert squad_cli([str(TINY), str(tmp_path / "missing.json")]) == 1
    assert "missing.json: no such file" in capsys.readouterr().err


def test_run_squad_data_error_names_the_file(tmp_path, capsys):
    """examples/run_squad.py (paddle_binbert.train.finetune) reports a bad data file as a flag error
    (parser.error) naming the file."""
    from paddle_binbert.train.arguments import FlagError, SquadFinetuneArguments
    from paddle_binbert.train.finetune import load_squad_data

    bad = non_utf8_copy(tmp_path)
    args = SquadFinetuneArguments(
        train_file=str(bad), predict_file=str(TINY), max_seq_length=64, doc_stride=32, max_query_length=16
    )
    with pytest.raises(FlagError, match=str(bad)):
        load_squad_data(args, tokenizer=None, max_positions=512)
