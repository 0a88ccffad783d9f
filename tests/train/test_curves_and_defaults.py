"""Learning-curve rows across a resume, and the YAML training defaults of methods and tasks."""

import os
from types import SimpleNamespace

import pytest

from paddle_binbert.distill.task_distill import parse_args
from paddle_binbert.train import defaults as D
from paddle_binbert.train.curves import LearningCurveCallback, read_curve

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")


def _args(batch=8):
    return SimpleNamespace(per_device_train_batch_size=batch, dataset_world_size=1, gradient_accumulation_steps=1)


def test_curve_rows_survive_a_resume_and_drop_rows_after_the_checkpoint(tmp_path):
    path = str(tmp_path / "learning_curve.csv")
    cb = LearningCurveCallback(path)
    state = SimpleNamespace(global_step=0, epoch=0.0)
    cb.on_train_begin(_args(), state, None)
    for step in (10, 20, 30):
        state.global_step, state.epoch = step, step / 100
        cb.on_log(_args(), state, None, logs={"loss": 1.0 / step})
        cb.on_evaluate(_args(), state, None, metrics={"eval_acc": step / 100, "eval_loss": 0.5})
    cb.on_evaluate(_args(), state, None, metrics={"teacher_acc": 0.9})  # not the student: ignored
    rows = read_curve(path)
    assert [int(r["step"]) for r in rows] == [10, 20, 30]
    assert [int(r["examples"]) for r in rows] == [80, 160, 240]
    assert float(rows[-1]["acc"]) == pytest.approx(0.3)
    assert float(rows[-1]["train_loss"]) == pytest.approx(1 / 30, abs=1e-6)
    # a new process resumes from checkpoint-20: the row of step 30 is replaced, minutes continue
    minutes_at_20 = float(rows[1]["wall_minutes"])
    resumed = LearningCurveCallback(path)
    state = SimpleNamespace(global_step=20, epoch=0.2)
    resumed.on_train_begin(_args(), state, None)
    resumed.start -= 120  # as if this process had trained for two minutes
    assert [int(r["step"]) for r in read_curve(path)] == [10, 20]
    state.global_step = 30
    resumed.on_evaluate(_args(), state, None, metrics={"eval_acc": 0.31})
    rows = read_curve(path)
    assert [int(r["step"]) for r in rows] == [10, 20, 30] and float(rows[-1]["acc"]) == pytest.approx(0.31)
    assert float(rows[-1]["wall_minutes"]) >= minutes_at_20 + 1.99
    # the evaluation of the reloaded best checkpoint after training is not a point of the curve
    resumed.on_train_end(_args(), state, None)
    resumed.on_evaluate(_args(), state, None, metrics={"eval_acc": 0.99})
    assert float(read_curve(path)[-1]["acc"]) == pytest.approx(0.31)


def test_training_defaults_precedence():
    # method per-task value > task value > method general value
    bit_mrpc = D.training_defaults("bit", "MRPC")
    assert bit_mrpc["learning_rate"] == pytest.approx(5e-4) and bit_mrpc["batch_size"] == 16
    assert bit_mrpc["max_seq_length"] == 128 and bit_mrpc["num_train_epochs"] == 20
    assert D.training_defaults("bibert", "SST-2")["batch_size"] == 16
    assert D.training_defaults("bibert", "SST-2")["learning_rate"] == pytest.approx(1e-4)
    assert D.training_defaults("bwn", "squad")["batch_size"] == 16  # SQuAD's task value beats bwn's 32
    assert D.training_defaults("bwn", "SST-2")["batch_size"] == 32


def test_bad_config_files_are_named(tmp_path, monkeypatch):
    (tmp_path / "methods").mkdir()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "methods" / "bit.yaml").write_text("batch_size: 8\nbatchsize: 4\n")
    (tmp_path / "methods" / "bwn.yaml").write_text("tasks:\n  SST-2: {lr: 1}\n")
    monkeypatch.setenv(D.CONFIG_DIR_ENV, str(tmp_path))
    with pytest.raises(ValueError, match=r"bit\.yaml: unknown keys \['batchsize'\]"):
        D.training_defaults("bit", "SST-2")
    with pytest.raises(ValueError, match=r"bwn\.yaml: tasks\.SST-2: unknown keys \['lr'\]"):
        D.training_defaults("bwn", "SST-2")
    monkeypatch.setenv(D.CONFIG_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="configs folder"):
        D.training_defaults("bit", "SST-2")


def test_task_distill_flags_take_method_defaults_unless_given(tmp_path):
    base = ["--teacher_path", FIXTURES, "--task_name", "SST-2", "--data_dir", os.path.join(FIXTURES, "glue", "SST-2")]
    args = parse_args(base + ["--method", "bit", "--output_dir", str(tmp_path / "a")])
    assert (args.batch_size, args.learning_rate, args.max_seq_length) == (16, pytest.approx(1e-4), 64)
    assert args.optimizer == "bertadam"  # configs/methods/bit.yaml
    args = parse_args(base + ["--method", "bit", "--batch_size", "4", "--optimizer", "bertadam",
                              "--output_dir", str(tmp_path / "b")])  # fmt: skip
    assert (args.batch_size, args.optimizer) == (4, "bertadam")
