"""End-to-end task_distill.py runs on tiny fixtures: outputs, resume, .pdparams teachers, fail-fast errors."""

import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from paddle_binbert import load_model
from paddle_binbert.distill.losses import DistillLossConfig
from paddle_binbert.distill.recipes import get_method, loss_config_from_flags
from paddle_binbert.distill.task_distill import main
from paddle_binbert.models import quant_config_of
from tests.tiny import BIBERT_FLAGS

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")
SST2 = os.path.join(FIXTURES, "glue", "SST-2")
STSB = os.path.join(FIXTURES, "glue", "STS-B")


def make_teacher(path, num_labels=2, vocab_size=None, seed=0):
    tok = BertTokenizer(os.path.join(FIXTURES, "vocab.txt"))
    cfg = BertConfig(vocab_size=vocab_size or len(tok.vocab), hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                     num_labels=num_labels, use_cache=False)
    paddle.seed(seed)
    model = BertForSequenceClassification(cfg)
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return model


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher")
    make_teacher(path)
    return str(path)


def common(teacher, out, data=SST2, task="SST-2"):
    return ["--model_type", "bert", "--student_model_name_or_path", teacher, "--teacher_model_type", "bert",
            "--teacher_path", teacher, "--task_name", task, "--data_dir", data, "--max_seq_length", "32",
            "--batch_size", "4", "--learning_rate", "1e-3", "--logging_steps", "1", "--eval_steps", "2",
            "--seed", "1", "--output_dir", str(out)]


def test_bibert_run_writes_best_student_and_results(teacher_dir, tmp_path):
    out = tmp_path / "run"
    results = main(common(teacher_dir, out) + ["--num_train_epochs", "2"] + BIBERT_FLAGS)
    saved = json.loads((out / "results.json").read_text())
    assert saved["method"] == "bibert" and saved["bits"] == "1-1-1"
    assert set(saved["loss"]) == {"pred", "hard_label", "hid_distance", "query", "key", "value"}
    assert 0.0 <= saved["student"]["acc"] <= 1.0 and 0.0 <= saved["teacher"]["acc"] <= 1.0
    assert saved["student_size_mib"] < saved["teacher_size_mib"] / 5
    assert saved["global_steps"] == 6  # 12 examples / batch 4 * 2 epochs
    # the saved folder is the best student, reloadable with its quantizers, giving the reported accuracy
    student = load_model(str(out))
    assert quant_config_of(student).name == "bibert"
    tok = BertTokenizer.from_pretrained(str(out))
    from paddle_binbert.data.glue import load_glue_features

    feats = load_glue_features(SST2, "SST-2", "dev", tok, 32)
    correct = 0
    for f in feats:
        logits = student(paddle.to_tensor([f["input_ids"]]), token_type_ids=paddle.to_tensor([f["token_type_ids"]]))
        correct += int(logits.argmax(-1).item() == f["labels"])
    assert correct / len(feats) == pytest.approx(results["student"]["acc"])
    log = json.loads((out / "trainer_state.json").read_text())["log_history"][0]
    assert {"loss_pred", "loss_query", "loss_hid_distance"} <= set(log)


def _run_script(args):
    """task_distill.py in a fresh process, as a user would (re)start it after an interruption."""
    script = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "task_distill.py")
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=300)


def test_resume_continues_from_last_checkpoint(teacher_dir, tmp_path):
    out = tmp_path / "run"
    first = _run_script(common(teacher_dir, out) + ["--max_steps", "4", "--method", "bit"])
    assert first.returncode == 0, first.stderr[-2000:]
    assert os.path.isdir(out / "checkpoint-4")
    os.remove(out / "results.json")  # as if the run had been killed right after checkpoint-4
    refused = _run_script(common(teacher_dir, out) + ["--max_steps", "8", "--method", "bit"])
    assert refused.returncode != 0 and "pass --resume" in refused.stderr
    second = _run_script(common(teacher_dir, out) + ["--max_steps", "8", "--method", "bit", "--resume"])
    assert second.returncode == 0, second.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["resumed_from"].endswith("checkpoint-4")
    assert results["global_steps"] == 8
    steps = [e["step"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert steps == list(range(1, 9))  # the first part's history is kept and training went on from step 5


def test_pdparams_teacher_file_and_regression_task(tmp_path):
    teacher = make_teacher(tmp_path / "stsb_teacher", num_labels=1)
    state_file = tmp_path / "sts-b_ft_model.pdparams"
    paddle.save(teacher.state_dict(), str(state_file))
    out = tmp_path / "run"
    args = common(str(tmp_path / "stsb_teacher"), out, data=STSB, task="sts-b")
    args[args.index("--teacher_path") + 1] = str(state_file)
    results = main(args + ["--max_steps", "2", "--pred_distill", "--intermediate_distill", "--method", "tinybert"])
    assert results["loss"] == {"pred": 1.0, "hid_mse": 1.0, "att_mse": 1.0}
    assert "pearson" in results["teacher"] and np.isfinite(results["student"]["pearson"])


def test_fail_fast_on_bad_task_and_missing_data(teacher_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(common(teacher_dir, tmp_path / "a", task="sst-3"))
    assert "sst-3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(common(teacher_dir, tmp_path / "b", data=str(tmp_path / "nowhere")))
    assert "nowhere" in capsys.readouterr().err


def test_vocab_mismatch_fails_before_training(teacher_dir, tmp_path):
    other = tmp_path / "other_student"
    make_teacher(other, vocab_size=500)
    args = common(teacher_dir, tmp_path / "run")
    args[args.index("--student_model_name_or_path") + 1] = str(other)
    with pytest.raises(ValueError, match="vocab_size"):
        main(args)
    assert not any(n.startswith("checkpoint-") for n in os.listdir(tmp_path / "run"))


def test_loss_flags_map_to_recipes():
    bibert = get_method("bibert")
    flags = dict(bi=True, pred_distill=True, intermediate_distill=True, query_distill=True, key_distill=True,
                 value_distill=True)
    assert loss_config_from_flags(bibert, **flags) == DistillLossConfig.bibert()
    tiny = get_method("tinybert")
    cfg = loss_config_from_flags(tiny, False, False, True, False, False, False)
    assert cfg.weights() == {"att_mse": 1.0, "hid_mse": 1.0}
    cfg = loss_config_from_flags(get_method("bit"), False, False, False, False, False, False, temperature=2.0)
    assert cfg.weights() == DistillLossConfig.bit().weights() and cfg.temperature == 2.0
    with pytest.raises(ValueError, match="valid methods"):
        get_method("xnor")
