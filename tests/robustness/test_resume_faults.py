"""Resuming training runs (issue 25, training side).

* 4: a checkpoint left incomplete by a kill while saving is skipped by ``--resume`` (with a log line
  naming it), and saving is atomic (staged in ``.partial-checkpoint-N``, then renamed);
* 5: a run moved to another folder, or resumed under another spelling of its folder, resumes;
* 6: a resumed run with another method / quantization / loss is refused, naming the fields;
* 7: ``train_loss`` of a resumed run is the mean over all its steps, as in an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import paddle
import pytest
from paddlenlp.transformers import BertForSequenceClassification

from paddle_binbert.distill import task_distill
from paddle_binbert.train.output_dir import LOSS_TOTALS_FILE, checkpoint_problem, get_last_checkpoint
from tests.tiny import BIBERT_FLAGS, load_run_glue, save_tiny_bert, save_tiny_checkpoint

from .helpers import FIXTURES, kill_after_checkpoint

SST2 = FIXTURES / "glue" / "SST-2"
run_glue = load_run_glue()


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("backbone")
    save_tiny_bert(folder, FIXTURES / "vocab.txt")
    return str(folder)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("teacher")
    save_tiny_checkpoint(folder, FIXTURES / "vocab.txt", BertForSequenceClassification, max_position_embeddings=64)
    return str(folder)


def glue_argv(backbone: str, out, *extra: str) -> list:
    return ["--model_name_or_path", backbone, "--task_name", "SST-2", "--data_dir", str(SST2),
            "--output_dir", str(out), "--max_seq_length", "32", "--batch_size", "4", "--learning_rate", "1e-3",
            "--logging_steps", "1", "--eval_steps", "2", *extra]  # fmt: skip


def distill_argv(teacher: str, out, *extra: str) -> list:
    return ["--teacher_path", teacher, "--task_name", "SST-2", "--data_dir", str(SST2), "--output_dir", str(out),
            "--max_seq_length", "32", "--batch_size", "4", "--learning_rate", "1e-3", "--logging_steps", "1",
            "--eval_steps", "2", "--seed", "1", *extra]  # fmt: skip


def first_run(backbone: str, out, steps: int = 4, *extra: str) -> dict:
    """A run of ``steps`` steps, then its results.json removed: as if killed after its last checkpoint."""
    results = run_glue.main(glue_argv(backbone, out, "--max_steps", str(steps), *extra))
    os.remove(Path(out) / "results.json")
    return results


def step_losses(out) -> dict:
    history = json.loads((Path(out) / "trainer_state.json").read_text())["log_history"]
    return {e["step"]: e["loss"] for e in history if "loss" in e}


# ---------------------------------------------------------------------- 4: incomplete checkpoints


def _complete_checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True)
    paddle.save({"w": paddle.ones([4])}, str(folder / "model_state.pdparams"))
    paddle.save({"w_moment1_0": paddle.zeros([4])}, str(folder / "optimizer.pdopt"))
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": int(folder.name.split("-")[1])}))
    return folder


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda c: (c / "trainer_state.json").unlink(), "no trainer_state.json"),
        (lambda c: (c / "trainer_state.json").write_text('{"global_st'), "trainer_state.json is unreadable"),
        (lambda c: (c / "model_state.pdparams").write_bytes(b""), "model_state.pdparams is empty (0 bytes)"),
        (lambda c: (c / "optimizer.pdopt").write_bytes(b""), "optimizer.pdopt is empty (0 bytes)"),
        (lambda c: (c / "model_state.pdparams").unlink(), "no weight file"),
        (
            lambda c: (c / "model_state.pdparams").write_bytes((c / "model_state.pdparams").read_bytes()[:-20]),
            "model_state.pdparams is truncated",
        ),
    ],
)
def test_incomplete_checkpoints_are_skipped_with_a_log_line(tmp_path, caplog, damage, problem):
    older = _complete_checkpoint(tmp_path / "checkpoint-2")
    newest = _complete_checkpoint(tmp_path / "checkpoint-10")
    assert checkpoint_problem(str(newest)) is None and get_last_checkpoint(str(tmp_path)) == str(newest)
    damage(newest)
    assert problem in checkpoint_problem(str(newest))
    with caplog.at_level(logging.WARNING):
        assert get_last_checkpoint(str(tmp_path)) == str(older)
    assert f"skipping incomplete checkpoint {newest}: {problem}" in caplog.text
    damage(older)
    assert get_last_checkpoint(str(tmp_path)) is None


def test_resume_skips_a_checkpoint_killed_while_saving(backbone, tmp_path, caplog):
    out = tmp_path / "run"
    first_run(backbone, out)
    # the kill of the fault sweep: 0-byte weights and optimizer, no trainer_state.json
    (out / "checkpoint-4" / "model_state.pdparams").write_bytes(b"")
    (out / "checkpoint-4" / "optimizer.pdopt").write_bytes(b"")
    (out / "checkpoint-4" / "trainer_state.json").unlink()
    with caplog.at_level(logging.INFO):
        resumed = run_glue.main(glue_argv(backbone, out, "--max_steps", "6", "--resume"))
    assert f"skipping incomplete checkpoint {out / 'checkpoint-4'}" in caplog.text
    assert resumed["resumed_from"] == str(out / "checkpoint-2") and resumed["global_steps"] == 6
    assert sorted(step_losses(out)) == [1, 2, 3, 4, 5, 6]
    for folder in out.glob("checkpoint-*"):
        assert checkpoint_problem(str(folder)) is None, folder  # checkpoint-4 was saved again, completely


class Killed(Exception):
    """Stands for the process being killed."""


def test_a_kill_while_saving_leaves_no_checkpoint_folder(backbone, tmp_path, monkeypatch):
    from paddlenlp.trainer import Trainer

    out = tmp_path / "run"
    real_save_model = Trainer.save_model

    def save_model_then_die(self, output_dir=None, *args, **kwargs):
        real_save_model(self, output_dir, *args, **kwargs)
        if self.state.global_step == 4:  # the weights of checkpoint-4 are written, the rest is not
            raise Killed

    monkeypatch.setattr(Trainer, "save_model", save_model_then_die)
    with pytest.raises(Killed):
        run_glue.main(glue_argv(backbone, out, "--max_steps", "6"))
    monkeypatch.undo()
    assert not (out / "checkpoint-4").exists()
    assert (out / ".partial-checkpoint-4" / "checkpoint-4" / "model_state.pdparams").is_file()
    assert checkpoint_problem(str(out / "checkpoint-2")) is None
    resumed = run_glue.main(glue_argv(backbone, out, "--max_steps", "6", "--resume"))
    assert resumed["resumed_from"] == str(out / "checkpoint-2") and resumed["global_steps"] == 6
    assert not list(out.glob(".partial-*"))
    assert json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())["best_model_checkpoint"] in (
        str(out / "checkpoint-6"),
        str(out / "checkpoint-4"),
        str(out / "checkpoint-2"),
    )


# ---------------------------------------------------------------------- 5: moved / re-spelled runs


@pytest.mark.parametrize("move", [True, False])
def test_resume_in_a_moved_or_respelled_folder(backbone, tmp_path, monkeypatch, move):
    first = tmp_path / "runs" / "x"
    first_run(backbone, first)  # recorded with absolute paths
    state = json.loads((first / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"].startswith(str(first))
    monkeypatch.chdir(tmp_path)
    if move:
        os.rename(first, tmp_path / "runs" / "y")
    relative = os.path.join(".", "runs", "y" if move else "x") + os.sep
    resumed = run_glue.main(glue_argv(backbone, relative, "--max_steps", "8", "--resume"))
    assert resumed["global_steps"] == 8
    best = resumed["best_checkpoint"]
    assert os.path.isdir(best) and os.path.realpath(best).startswith(str(tmp_path / "runs" / ("y" if move else "x")))
    folder = tmp_path / "runs" / ("y" if move else "x")
    assert len(list(folder.glob("checkpoint-*"))) <= 3  # rotation ran and kept the best


# ---------------------------------------------------------------------- 6: the run's definition


def test_resume_with_another_method_is_refused(teacher, tmp_path):
    out = tmp_path / "bibert"
    task_distill.main(distill_argv(teacher, out, "--max_steps", "2", *BIBERT_FLAGS))
    os.remove(out / "results.json")
    with pytest.raises(ValueError) as info:
        task_distill.main(distill_argv(teacher, out, "--max_steps", "4", "--method", "bwn", "--resume"))
    message = str(info.value)
    assert "method: recorded 'bibert', now 'bwn'" in message
    assert "quantization." in message and "loss." in message and "--overwrite_output_dir" in message
    assert not (out / "checkpoint-4").exists()
    with pytest.raises(ValueError, match=r"loss.temperature: recorded 1.0, now 2.0"):
        task_distill.main(distill_argv(teacher, out, "--max_steps", "4", "--temperature", "2", "--resume",
                                       *BIBERT_FLAGS))  # fmt: skip
    resumed = task_distill.main(distill_argv(teacher, out, "--max_steps", "4", "--resume", *BIBERT_FLAGS))
    assert resumed["resumed_from"] == str(out / "checkpoint-2") and resumed["method"] == "bibert"


def test_run_glue_resume_with_length_drop_is_refused(backbone, tmp_path, capsys):
    out = tmp_path / "run"
    first_run(backbone, out, 2)
    with pytest.raises(SystemExit) as info:
        run_glue.main(glue_argv(backbone, out, "--max_steps", "4", "--resume", "--length_adaptive"))
    assert info.value.code == 2
    assert "length_adaptive: recorded False, now True" in capsys.readouterr().err


# ---------------------------------------------------------------------- 7: train_loss after a resume


@pytest.mark.parametrize("legacy", [False, True])
def test_train_loss_after_resume_is_the_mean_over_all_steps(backbone, tmp_path, legacy):
    out = tmp_path / "run"
    first = first_run(backbone, out)
    losses = step_losses(out)
    assert first["train_loss"] == pytest.approx(sum(losses.values()) / 4, rel=1e-5)
    totals = json.loads((out / "checkpoint-4" / LOSS_TOTALS_FILE).read_text())
    assert totals["steps"] == totals["global_step"] == 4
    assert totals["loss_sum"] == pytest.approx(sum(losses.values()), rel=1e-5)
    if legacy:  # a checkpoint of an older version: the logged losses stand in for the totals
        for folder in out.glob("checkpoint-*"):
            os.remove(folder / LOSS_TOTALS_FILE)
    resumed = run_glue.main(glue_argv(backbone, out, "--max_steps", "8", "--resume"))
    losses = step_losses(out)
    assert sorted(losses) == list(range(1, 9))
    mean = sum(losses.values()) / 8
    assert resumed["train_loss"] == pytest.approx(mean, rel=1e-5)
    assert resumed["train_metrics"]["train_loss"] == pytest.approx(mean, rel=1e-5)
    logged = [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "train_loss" in e]
    assert logged[-1]["train_loss"] == pytest.approx(mean, rel=1e-5)


def test_train_loss_matches_an_uninterrupted_run(backbone, tmp_path, monkeypatch):
    """Killed after checkpoint-4 of 8 steps and resumed: the same train_loss as without the kill, also
    with a logging window (3) that does not end at the checkpoint (its steps count too)."""
    argv = ["--max_steps", "8", "--logging_steps", "3"]
    whole = run_glue.main(glue_argv(backbone, tmp_path / "whole", *argv))
    kill_after_checkpoint(monkeypatch, 4)
    out = tmp_path / "parts"
    with pytest.raises(KeyboardInterrupt):
        run_glue.main(glue_argv(backbone, out, *argv))
    monkeypatch.undo()
    resumed = run_glue.main(glue_argv(backbone, out, *argv, "--resume"))
    assert resumed["resumed_from"] == str(out / "checkpoint-4")
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-4)
