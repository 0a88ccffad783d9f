"""squad_distill.py on a tiny SQuAD file: BiBERT and BiT students, results, dispatch helper, errors."""

import json
import os

import pytest

from paddle_binbert import load_model
from paddle_binbert.distill.squad_distill import build_parser, main, wants_squad
from paddle_binbert.models import quant_config_of

from ..tiny import BIBERT_FLAGS
from .helpers import make_qa_checkpoint, run_example


def common(teacher, files, out):
    # the BiBERT release's command line, with SQuAD files instead of --data_dir
    return ["--model_type", "bert", "--student_model_name_or_path", teacher, "--teacher_model_type", "bert",
            "--teacher_path", teacher, "--task_name", "squad", "--train_file", files[0], "--predict_file", files[1],
            "--max_seq_length", "24", "--doc_stride", "6", "--max_query_length", "10", "--batch_size", "8",
            "--learning_rate", "1e-3", "--logging_steps", "1", "--eval_steps", "2", "--seed", "1",
            "--output_dir", str(out)]  # fmt: skip


def test_bibert_student(qa_checkpoint, files, tmp_path):
    out = tmp_path / "bibert"
    results = main(common(qa_checkpoint, files, out) + ["--max_steps", "4"] + BIBERT_FLAGS)
    saved = json.loads((out / "results.json").read_text())
    assert saved["method"] == "bibert" and saved["bits"] == "1-1-1" and saved["main_metric"] == "f1"
    assert set(saved["loss"]) == {"pred", "hard_label", "hid_distance", "query", "key", "value"}
    for who in ("teacher", "student"):
        assert set(saved[who]) == {"exact_match", "f1"} and 0.0 <= saved[who]["f1"] <= 100.0
    assert saved["student_size_mib"] < saved["teacher_size_mib"] / 5
    assert saved["student_gflops"] < saved["teacher_gflops"]
    assert saved["global_steps"] == 4 and results["student"]["f1"] == pytest.approx(saved["best_metric"])
    assert (out / "predictions.json").is_file() and (out / "nbest_predictions.json").is_file()
    student = load_model(str(out))
    assert type(student).__name__ == "BertForQuestionAnswering" and quant_config_of(student).name == "bibert"
    log = json.loads((out / "trainer_state.json").read_text())["log_history"]
    train_logs = [e for e in log if "loss" in e]
    assert {"loss_pred", "loss_hard_label", "loss_query", "loss_key", "loss_value", "loss_hid_distance"} <= set(
        train_logs[0]
    )
    assert any("eval_f1" in e for e in log)


def test_bit_student_and_resume(qa_checkpoint, files, tmp_path):
    out = tmp_path / "bit"
    args = common(qa_checkpoint, files, out) + ["--method", "bit", "--temperature", "2"]
    first = run_example("squad_distill.py", *args, "--max_steps", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    os.remove(out / "results.json")
    second = run_example("squad_distill.py", *args, "--max_steps", "4", "--resume")
    assert second.returncode == 0, second.stderr[-2000:]
    saved = json.loads((out / "results.json").read_text())
    assert saved["method"] == "bit" and saved["bits"] == "1-1-1"
    assert saved["loss"] == {"pred": 1.0, "hid_mse": 1.0} and saved["temperature"] == 2.0
    assert saved["resumed_from"].endswith("checkpoint-2") and saved["global_steps"] == 4
    assert "teacher EM/F1" in second.stdout


QUICK = ["--max_steps", "1", "--eval_steps", "1", "--max_eval_examples", "2"]


@pytest.mark.parametrize("method", ["bwn", "binarybert_ternary", "tinybert"])
def test_other_presets_run(qa_checkpoint, files, tmp_path, method):
    results = main(common(qa_checkpoint, files, tmp_path / method) + ["--method", method] + QUICK)
    assert results["method"] == method and results["global_steps"] == 1


def test_binarybert_pipeline_and_bit_chain(qa_checkpoint, files, tmp_path):
    out = tmp_path / "binarybert"
    results = main(common(qa_checkpoint, files, out) + ["--method", "binarybert"] + QUICK)
    assert [r["stage"] for r in results["chain"]] == ["ternary_intermediate", "ternary_prediction", "split_binary"]
    assert results["global_steps"] == 3 and results["chain"][-1]["student"]["f1"] >= 0.0
    assert type(load_model(str(out))).__name__ == "BertForQuestionAnswering"
    out = tmp_path / "bit_chain"
    results = main(common(qa_checkpoint, files, out) + ["--method", "bit", "--distill_chain", "1-1-2,1-1-1"] + QUICK)
    assert [r["bits"] for r in results["chain"]] == ["1-1-2", "1-1-1"]
    assert results["chain"][1]["teacher_from"] == "previous stage"


def test_wants_squad_dispatch_helper(tmp_path):
    assert wants_squad(["--task_name", "squad", "--bi"]) and wants_squad(["--task_name=SQuAD-v1.1"])
    assert not wants_squad(["--task_name", "SST-2"]) and not wants_squad([])
    config = tmp_path / "c.yaml"
    config.write_text("task_name: squad1.1\n")
    assert wants_squad(["--config", str(config)])
    assert not wants_squad(["--config", str(config), "--task_name", "rte"])


def test_help_documents_every_flag():
    parser = build_parser()
    for action in parser._actions:
        assert action.help, action.dest
    text = run_example("squad_distill.py", "--help", timeout=120).stdout
    for option in (
        "--train_file",
        "--predict_file",
        "--doc_stride",
        "--n_best_size",
        "--bi",
        "--method",
        "--query_distill",
        "--temperature",
        "--resume",
        "--config",
    ):
        assert option in text
    for action in parser._actions:
        for option in action.option_strings:
            assert option in text


def test_data_dir_and_config(qa_checkpoint, files, tmp_path):
    args = common(qa_checkpoint, files, tmp_path / "a")
    i = args.index("--train_file")
    del args[i : i + 4]  # no --train_file / --predict_file
    config = tmp_path / "c.yaml"
    config.write_text("method: bit\nmax_steps: 1\nloss:\n  hid_mse: 0.5\n")
    data_dir = os.path.dirname(files[0])
    os.rename(files[0], os.path.join(data_dir, "train-v1.1.json"))
    os.rename(files[1], os.path.join(data_dir, "dev-v1.1.json"))
    try:
        results = main(args + ["--data_dir", data_dir, "--config", str(config), "--max_eval_examples", "2"])
    finally:
        os.rename(os.path.join(data_dir, "train-v1.1.json"), files[0])
        os.rename(os.path.join(data_dir, "dev-v1.1.json"), files[1])
    assert results["method"] == "bit" and results["loss"] == {"pred": 1.0, "hid_mse": 0.5}
    assert results["global_steps"] == 1


def test_errors(qa_checkpoint, files, tmp_path, capsys):
    args = common(qa_checkpoint, files, tmp_path / "a")
    bad_task = list(args)
    bad_task[bad_task.index("--task_name") + 1] = "SST-2"
    with pytest.raises(SystemExit):
        main(bad_task)
    assert "not SQuAD" in capsys.readouterr().err
    missing = list(args)
    missing[missing.index("--train_file") + 1] = str(tmp_path / "none.json")
    with pytest.raises(SystemExit):
        main(missing)
    assert "none.json does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args + ["--method", "bit", "--bi"])
    assert "conflicts" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args + ["--aug_train"])
    assert "--aug_train" in capsys.readouterr().err
    # a GLUE classifier is not a SQuAD teacher
    glue = tmp_path / "glue_teacher"
    make_qa_checkpoint(glue, classifier=True)
    wrong = list(args)
    wrong[wrong.index("--teacher_path") + 1] = str(glue)
    wrong[wrong.index("--student_model_name_or_path") + 1] = str(glue)
    with pytest.raises(ValueError, match="BertForSequenceClassification"):
        main(wrong + ["--max_steps", "1"])
