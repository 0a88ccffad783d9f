"""Fault sweep (issue 25), item 16: ``paddle-binbert predict`` keeps one output line per input.

Blank lines and empty arguments get an explicit error entry (in their place), quoted lines are
text kept verbatim, a bad line (``[1, 2]``) gets an error entry naming its line while the other
lines are predicted (exit status 1), and a missing or non-UTF-8 input file is a one-line error
naming the file (exit status 2), never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification

from paddle_binbert import Taskflow
from paddle_binbert.cli import main
from tests.tiny import save_tiny_checkpoint

VOCAB = Path(__file__).resolve().parents[1] / "fixtures" / "vocab.txt"


@pytest.fixture(scope="module")
def cls_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("cls")
    save_tiny_checkpoint(folder, VOCAB, BertForSequenceClassification, seed=2, num_labels=3)
    return str(folder)


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("qa")
    save_tiny_checkpoint(folder, VOCAB, BertForQuestionAnswering, seed=3)
    return str(folder)


def predict(capsys, *argv: str):
    """(exit status, output entries, stderr) of ``paddle-binbert predict ARGV``."""
    code = main(["predict", *argv])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


LINES = [
    "a plain text",
    "",
    '"a quoted line"',
    "[1, 2]",
    "left\tright",
    '["json", "pair"]',
    "   ",
    "[laughs] not json",
    '{"not": "a pair"}',
    "last line",
]


def test_one_output_per_input_line(cls_dir, tmp_path, capsys):
    inputs = tmp_path / "in.txt"
    inputs.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    code, out, err = predict(capsys, "text_classification", "--task_path", cls_dir, "--input", str(inputs))
    assert code == 1  # some inputs have no prediction
    assert len(out) == len(LINES)
    errors = {i + 1: entry for i, entry in enumerate(out) if "error" in entry}
    assert sorted(errors) == [2, 4, 7]
    for line, entry in errors.items():
        assert entry["line"] == line and entry["file"] == str(inputs)
        assert entry["error"].startswith(f"{inputs}, line {line}: ")
    assert "blank input" in errors[2]["error"] and "blank input" in errors[7]["error"]
    assert "two strings" in errors[4]["error"] and "[1, 2]" in errors[4]["error"]
    assert "3 of 10 inputs have no prediction" in err and "Traceback" not in err

    expected_items = [
        "a plain text",
        '"a quoted line"',  # verbatim, quotes kept
        ("left", "right"),
        ("json", "pair"),
        "[laughs] not json",
        '{"not": "a pair"}',
        "last line",
    ]
    predicted = [entry for entry in out if "error" not in entry]
    assert [e["text"] if isinstance(e["text"], str) else tuple(e["text"]) for e in predicted] == expected_items
    direct = Taskflow("text_classification", task_path=cls_dir)(expected_items)
    assert [e["predictions"] for e in predicted] == [d["predictions"] for d in direct]


def test_all_good_lines_exit_zero_and_crlf(cls_dir, tmp_path, capsys):
    inputs = tmp_path / "in.txt"
    inputs.write_bytes(b"first\r\nsecond\r\n")
    code, out, err = predict(capsys, "text_classification", "--task_path", cls_dir, "--input", str(inputs))
    assert code == 0 and [e["text"] for e in out] == ["first", "second"] and not err


def test_empty_argument_is_an_error_entry_like_a_blank_line(cls_dir, capsys):
    code, out, err = predict(capsys, "text_classification", "--task_path", cls_dir, "", "some text")
    assert code == 1 and len(out) == 2
    assert out[0] == {"error": "argument 1: blank input: nothing to predict", "argument": 1}
    assert out[1]["text"] == "some text"
    code, out, _ = predict(capsys, "text_classification", "--task_path", cls_dir, '"quoted"')
    assert code == 0 and out[0]["text"] == '"quoted"'


def test_question_answering_bad_line(qa_dir, tmp_path, capsys):
    good = {"question": "Who wrote it?", "context": "It was written by Ann Lee in 1990."}
    inputs = tmp_path / "qa.jsonl"
    inputs.write_text(
        "\n".join([json.dumps(good), "plain text", json.dumps({"question": "q"}), "", json.dumps(good)]),
        encoding="utf-8",
    )
    code, out, _ = predict(
        capsys, "question_answering", "--task_path", qa_dir, "--input", str(inputs), "--max_length", "32"
    )
    assert code == 1 and len(out) == 5
    assert [("error" in e) for e in out] == [False, True, True, True, False]
    assert out[1]["line"] == 2 and "expected a JSON object" in out[1]["error"]
    assert 'string "question" and "context"' in out[2]["error"]
    assert out[0] == out[4] and out[0]["answer"] == good["context"][out[0]["start"] : out[0]["end"]]


def test_missing_or_non_utf8_input_file(cls_dir, tmp_path, capsys):
    missing = tmp_path / "nope.txt"
    code, out, err = predict(capsys, "text_classification", "--task_path", cls_dir, "--input", str(missing))
    assert (code, out) == (2, []) and f"input file {missing} does not exist" in err
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("ok\ncaf\u00e9\n".encode("latin-1"))
    code, out, err = predict(capsys, "text_classification", "--task_path", cls_dir, "--input", str(latin))
    assert (code, out) == (2, []) and f"input file {latin}: expected UTF-8 text, invalid byte b'\\xe9' at line 2" in err
    assert "Traceback" not in err
    code, out, err = predict(capsys, "text_classification", "--task_path", cls_dir, "--input", str(tmp_path))
    assert code == 2 and "is a folder" in err


def test_bad_checkpoint_is_a_clear_error(tmp_path, capsys):
    code, out, err = predict(capsys, "text_classification", "--task_path", str(tmp_path / "none"), "text")
    assert (code, out) == (2, []) and "error: task_path" in err
