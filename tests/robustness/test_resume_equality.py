"""A resumed run ends exactly where an uninterrupted one does (issue 25, "Also").

Each case trains 8 steps twice from the same seed: once without interruption, once killed right
after saving ``checkpoint-4`` (an exception raised out of the trainer, as a kill would leave it) and
then resumed with ``--resume``. The two ``checkpoint-8`` folders must hold the same model weights
(quantizer scales included), the same optimizer state (AdamW moments, beta powers, learning-rate
scheduler) and the same per-step losses; the runs report the same ``train_loss`` and save the same
best student. Tolerance: bit-identical (CPU, one thread, same kernels in both runs).

Cases: GLUE distillation (BiBERT, BiT with calibrated activation scales and the ``--clip_lr``
group), SQuAD distillation (BiT), and stage 2 of a ``--distill_chain 32-32-32,1-1-1`` run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import numpy as np
import paddle
import pytest

from paddle_binbert.distill import squad_distill, task_distill
from tests.distill.test_task_distill import make_teacher
from tests.squad.helpers import make_qa_checkpoint, write_squad_files
from tests.tiny import BIBERT_FLAGS

from .helpers import FIXTURES, kill_after_checkpoint

SST2 = FIXTURES / "glue" / "SST-2"
STEPS, KILL_AT = 8, 4


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("teacher")
    make_teacher(folder)
    return str(folder)


@pytest.fixture(scope="module")
def squad(tmp_path_factory):
    folder = tmp_path_factory.mktemp("squad")
    checkpoint = folder / "qa"
    make_qa_checkpoint(checkpoint)
    return str(checkpoint), write_squad_files(folder / "data")


def glue_argv(teacher: str, out: Path, *extra: str) -> list:
    return ["--teacher_path", teacher, "--task_name", "SST-2", "--data_dir", str(SST2), "--output_dir", str(out),
            "--max_seq_length", "32", "--batch_size", "4", "--learning_rate", "1e-3", "--logging_steps", "1",
            "--eval_steps", "2", "--seed", "1", "--max_steps", str(STEPS), *extra]  # fmt: skip


def squad_argv(checkpoint: str, files, out: Path, *extra: str) -> list:
    return ["--teacher_path", checkpoint, "--task_name", "squad", "--train_file", files[0], "--predict_file", files[1],
            "--max_seq_length", "24", "--doc_stride", "6", "--max_query_length", "10", "--batch_size", "4",
            "--learning_rate", "1e-3", "--logging_steps", "1", "--eval_steps", "2", "--seed", "1",
            "--output_dir", str(out), "--max_steps", str(STEPS), *extra]  # fmt: skip


def tensors(path: Path) -> Dict[str, np.ndarray]:
    """The tensors of a Paddle state file, nested dicts flattened to ``a/b`` keys."""
    flat: Dict[str, np.ndarray] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}/{key}" if prefix else str(key), item)
        elif isinstance(value, paddle.Tensor):
            flat[prefix] = value.numpy()
        else:
            flat[prefix] = np.asarray(value)

    walk("", paddle.load(str(path)))
    return flat


def assert_same_state(whole: Path, resumed: Path) -> None:
    """``checkpoint-8`` of both runs: same weights, optimizer state and scheduler, bit for bit."""
    for name in ("model_state.pdparams", "optimizer.pdopt", "scheduler.pdparams"):
        a, b = tensors(whole / f"checkpoint-{STEPS}" / name), tensors(resumed / f"checkpoint-{STEPS}" / name)
        assert sorted(a) == sorted(b), name
        assert a, name
        for key in a:
            np.testing.assert_array_equal(b[key], a[key], err_msg=f"{name}: {key}")
    moments = [k for k in tensors(whole / f"checkpoint-{STEPS}" / "optimizer.pdopt") if "moment" in k]
    assert moments  # the comparison covered the Adam moments


def step_losses(out: Path) -> Dict[int, float]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {e["step"]: e["loss"] for e in history if "loss" in e}


def check_resume_equality(run, argv, tmp_path: Path, monkeypatch, run_dir=lambda out: out, kill_in=None) -> None:
    """``run(argv(out))`` uninterrupted vs killed after checkpoint-4 and resumed (see the module doc).
    ``run_dir``: the trainer's folder inside ``out`` (a chain's stage); ``kill_in``: its name, if only
    that trainer is to be killed."""
    whole_out, parts_out = tmp_path / "whole", tmp_path / "parts"
    whole = run(argv(whole_out))
    kill_after_checkpoint(monkeypatch, KILL_AT, only_in=kill_in)
    with pytest.raises(KeyboardInterrupt):
        run(argv(parts_out))
    monkeypatch.undo()
    assert not (run_dir(parts_out) / f"checkpoint-{STEPS}").exists()
    resumed = run(argv(parts_out) + ["--resume"])
    whole_dir, parts_dir = run_dir(whole_out), run_dir(parts_out)
    final = json.loads((parts_dir / "results.json").read_text())
    assert final["resumed_from"] == str(parts_dir / f"checkpoint-{KILL_AT}") and final["global_steps"] == STEPS
    assert_same_state(whole_dir, parts_dir)
    losses = step_losses(whole_dir)
    assert sorted(losses) == list(range(1, STEPS + 1)) and step_losses(parts_dir) == losses
    assert resumed["train_loss"] == whole["train_loss"]
    timing = ("runtime", "samples_per_second", "steps_per_second")
    assert {k: v for k, v in resumed["student"].items() if k not in timing} == {
        k: v for k, v in whole["student"].items() if k not in timing
    }
    best = tensors(whole_out / "model_state.pdparams")  # the best student, reloaded and saved at the end
    for key, value in tensors(parts_out / "model_state.pdparams").items():
        np.testing.assert_array_equal(value, best[key], err_msg=f"final student: {key}")


@pytest.mark.parametrize("method", ["bibert", "bit"])
def test_glue_distillation_resumes_to_the_same_weights_and_moments(teacher, tmp_path, monkeypatch, method):
    flags = BIBERT_FLAGS if method == "bibert" else ["--method", "bit"]
    check_resume_equality(task_distill.main, lambda out: glue_argv(teacher, out, *flags), tmp_path, monkeypatch)


def test_squad_distillation_resumes_to_the_same_weights_and_moments(squad, tmp_path, monkeypatch):
    checkpoint, files = squad
    argv = lambda out: squad_argv(checkpoint, files, out, "--method", "bit")  # noqa: E731
    check_resume_equality(squad_distill.main, argv, tmp_path, monkeypatch)


def test_chain_stage_two_resumes_to_the_same_weights_and_moments(teacher, tmp_path, monkeypatch):
    argv = lambda out: glue_argv(teacher, out, "--method", "bit", "--distill_chain", "32-32-32,1-1-1")  # noqa: E731
    stage2 = "stage2_1-1-1"
    check_resume_equality(
        task_distill.main, argv, tmp_path, monkeypatch, run_dir=lambda out: out / stage2, kill_in=stage2
    )


def test_the_comparison_sees_a_lost_optimizer_state(teacher, tmp_path, monkeypatch):
    """The check can fail: resumed from a checkpoint whose Adam moments were zeroed, the run ends
    with other weights and moments than the uninterrupted one."""
    whole_out, parts_out = tmp_path / "whole", tmp_path / "parts"
    task_distill.main(glue_argv(teacher, whole_out, *BIBERT_FLAGS))
    kill_after_checkpoint(monkeypatch, KILL_AT)
    with pytest.raises(KeyboardInterrupt):
        task_distill.main(glue_argv(teacher, parts_out, *BIBERT_FLAGS))
    monkeypatch.undo()
    path = parts_out / f"checkpoint-{KILL_AT}" / "optimizer.pdopt"
    state = paddle.load(str(path))
    moments = [k for k in state if "moment" in k]
    assert moments
    for key in moments:
        state[key] = paddle.zeros_like(state[key])
    paddle.save(state, str(path))
    task_distill.main(glue_argv(teacher, parts_out, *BIBERT_FLAGS, "--resume"))
    with pytest.raises(AssertionError, match="model_state.pdparams|optimizer.pdopt"):
        assert_same_state(whole_out, parts_out)
