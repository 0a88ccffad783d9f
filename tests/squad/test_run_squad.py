"""run_squad.py end to end on a tiny SQuAD file and a tiny QA checkpoint: outputs, best checkpoint, resume, errors."""

import json
import os

import pytest

from paddle_binbert.data.squad import load_squad_json, squad_evaluate
from paddle_binbert.train.cli import build_squad_parser as build_parser
from paddle_binbert.train.cli import squad_main as main

from .helpers import run_example

# small windows so that contexts need several overlapping windows
WINDOWS = ["--max_seq_length", "24", "--doc_stride", "6", "--max_query_length", "10"]


def common(backbone, files, out):
    return ["--model_name_or_path", backbone, "--train_file", files[0], "--predict_file", files[1],
            "--output_dir", str(out), *WINDOWS, "--batch_size", "8", "--learning_rate", "5e-3",
            "--logging_steps", "1", "--seed", "3"]  # fmt: skip


def test_end_to_end_outputs_and_best_checkpoint(qa_checkpoint, files, tmp_path):
    out = tmp_path / "run"
    results = main(common(qa_checkpoint, files, out) + ["--num_train_epochs", "3", "--eval_steps", "3"])
    assert results["num_train_windows"] > results["num_train_examples"] == 13  # several windows per question
    assert results["num_dev_examples"] == 8
    for name in ("results.json", "predictions.json", "nbest_predictions.json", "model_state.pdparams", "vocab.txt"):
        assert (out / name).is_file(), name
    predictions = json.loads((out / "predictions.json").read_text())
    assert sorted(predictions) == sorted(f"d{i}" for i in range(8))
    nbest = json.loads((out / "nbest_predictions.json").read_text())
    assert all(nbest[q][0]["text"] == predictions[q] for q in predictions)
    # the reported scores are the official ones of the written predictions
    scores = squad_evaluate(load_squad_json(files[1]), predictions)
    assert results["dev"]["f1"] == pytest.approx(scores["f1"]) and results["dev"]["exact_match"] == pytest.approx(
        scores["exact_match"]
    )
    # best checkpoint by F1, and that is the model evaluated at the end
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    f1s = [e["eval_f1"] for e in history if "eval_f1" in e]
    assert len(f1s) >= 3 and results["best_metric"] == pytest.approx(max(f1s[:-1]))
    assert results["dev"]["f1"] == pytest.approx(results["best_metric"])
    saved = json.loads((out / "results.json").read_text())
    assert saved["main_metric"] == "f1" and saved["global_steps"] == results["global_steps"]
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]


def test_saved_teacher_scores_the_same_with_evaluate_squad(qa_checkpoint, files, tmp_path):
    from paddle_binbert.inference.evaluate import evaluate_squad

    out = tmp_path / "run"
    results = main(common(qa_checkpoint, files, out) + ["--max_steps", "2", "--max_eval_examples", "5"])
    assert results["num_dev_examples"] == 5
    scores = evaluate_squad(str(out), files[1], max_seq_length=24, doc_stride=6, max_query_length=10, max_examples=5)
    assert scores["f1"] == pytest.approx(results["dev"]["f1"], abs=1e-6)


def test_resume_continues_from_last_checkpoint(qa_checkpoint, files, tmp_path):
    out = tmp_path / "run"
    args = common(qa_checkpoint, files, out) + ["--eval_steps", "2", "--max_train_examples", "8"]
    first = run_example("run_squad.py", *args, "--max_steps", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    assert (out / "checkpoint-2").is_dir()
    os.remove(out / "results.json")  # as if killed right after checkpoint-2
    refused = run_example("run_squad.py", *args, "--max_steps", "4")
    assert refused.returncode != 0 and "pass --resume" in refused.stderr
    second = run_example("run_squad.py", *args, "--max_steps", "4", "--resume")
    assert second.returncode == 0, second.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["resumed_from"].endswith("checkpoint-2") and results["global_steps"] == 4
    steps = [e["step"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert steps == [1, 2, 3, 4]
    again = run_example("run_squad.py", *args, "--max_steps", "2", "--overwrite_output_dir")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out / "results.json").read_text())["resumed_from"] is None


def test_help_documents_every_flag():
    parser = build_parser()
    for action in parser._actions:
        assert action.help, action.dest
    text = run_example("run_squad.py", "--help", timeout=120).stdout
    for action in parser._actions:
        for option in action.option_strings:
            assert option in text


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--train_file": "/nowhere/train.json"}, "--train_file /nowhere/train.json does not exist"),
        ({"--predict_file": "DIR"}, "is a folder"),
        ({"--max_seq_length": "12"}, "at least --max_query_length + 4"),
        ({"--doc_stride": "0"}, "--doc_stride must be positive"),
        ({"--max_steps": "0"}, "--max_steps"),
        ({"--save_steps": "3"}, "--save_steps"),
        ({"--max_train_examples": "0"}, "--max_train_examples must be positive"),
    ],
)
def test_bad_arguments_fail_fast(qa_checkpoint, files, tmp_path, capsys, change, message):
    args = common(qa_checkpoint, files, tmp_path / "run")
    for flag, value in change.items():
        value = str(tmp_path) if value == "DIR" else value
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    with pytest.raises(SystemExit):
        main(args)
    assert message in capsys.readouterr().err


def test_bad_json_and_existing_run(qa_checkpoint, files, tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": "1.1", "data": [ {"title": "x", "paragraphs": [}', encoding="utf-8")
    args = common(qa_checkpoint, files, tmp_path / "run")
    args[args.index("--predict_file") + 1] = str(broken)
    with pytest.raises(SystemExit):
        main(args)
    assert "invalid JSON at line 1" in capsys.readouterr().err
    wrong = tmp_path / "wrong.json"
    wrong.write_text(
        json.dumps(
            {
                "version": "1.1",
                "data": [{"title": "t", "paragraphs": [{"context": "abc", "qas": [{"id": "1", "answers": []}]}]}],
            }
        ),
        encoding="utf-8",
    )
    args[args.index("--predict_file") + 1] = str(wrong)
    with pytest.raises(SystemExit):
        main(args)
    assert "'question'" in capsys.readouterr().err
    out = tmp_path / "done"
    out.mkdir()
    (out / "results.json").write_text("{}")
    with pytest.raises(SystemExit):
        main(common(qa_checkpoint, files, out))
    assert "--overwrite_output_dir" in capsys.readouterr().err
