"""The training front ends give the same numbers as before the front-end restructuring (issue 24).

Fixed-seed tiny runs of every training command line (GLUE and SQuAD distillation, a BinaryBERT
half-width chain, LengthDrop distillation, GLUE and SQuAD fine-tuning) are reduced to their numbers
(dev metrics, training losses per logged step, sizes, steps) and compared with
``tests/fixtures/golden/frontend_runs.json``, recorded from the code before the restructuring
(commit c42f88c, this test's first version at 04776d1; the two LengthDrop fine-tuning entries
were added later, recorded from that same code) with

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python -m tests.test_frontend_golden --write

A change that alters what a run computes (data order, loss, schedule, quantization) fails here.
"""

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "fixtures" / "golden" / "frontend_runs.json"
FIXTURES = ROOT / "tests" / "fixtures"
SST2 = str(FIXTURES / "glue" / "SST-2")


def _numbers(value: Any, prefix: str = "") -> Dict[str, float]:
    """Every int / float leaf of ``value`` as ``path -> number`` (bools and strings skipped)."""
    out: Dict[str, float] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(_numbers(item, f"{prefix}{key}."))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.update(_numbers(item, f"{prefix}{i}."))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out[prefix.rstrip(".")] = float(value)
    return out


#: results.json entries that are not results of the computation (times, paths, the flags)
VOLATILE = ("wall_time", "args", "best_checkpoint", "predictions_file", "final_stage_dir", "resumed_from",
            "plan_file", "train_metrics", "summary", "runtime", "per_second")  # fmt: skip


def _summary(out: Path, results: Dict[str, Any]) -> Dict[str, float]:
    """The numbers of a finished run: ``results`` without :data:`VOLATILE` entries, plus the logged
    training losses and dev metrics of ``trainer_state.json`` (every stage of a chain)."""
    kept = {k: v for k, v in results.items() if not any(word in k for word in VOLATILE)}
    if "chain" in kept:
        kept["chain"] = [{k: v for k, v in row.items() if not any(w in k for w in VOLATILE)} for row in kept["chain"]]
    numbers = {k: v for k, v in _numbers(kept).items() if not any(word in k for word in VOLATILE)}
    for state in sorted(out.rglob("trainer_state.json")):
        if "checkpoint-" in str(state.relative_to(out)):
            continue
        history = json.loads(state.read_text())["log_history"]
        rel = str(state.parent.relative_to(out)).replace(".", "top")
        for entry in history:
            step = entry.get("step")
            for key, value in entry.items():
                if (key.startswith("loss") or key.startswith("eval_")) and not any(w in key for w in VOLATILE):
                    numbers[f"log.{rel}.{step}.{key}"] = float(value)
    return numbers


def _runs(tmp: Path) -> Dict[str, Callable[[], Dict[str, float]]]:
    from tests.distill.test_task_distill import make_teacher
    from tests.squad.helpers import make_qa_checkpoint, write_squad_files
    from tests.test_run_glue import run_glue
    from tests.tiny import BIBERT_FLAGS

    teacher = tmp / "teacher"
    make_teacher(teacher)
    qa = tmp / "qa"
    make_qa_checkpoint(qa)
    train_file, dev_file = write_squad_files(tmp / "squad")

    def glue(*extra: str) -> List[str]:
        return ["--model_type", "bert", "--student_model_name_or_path", str(teacher), "--teacher_model_type", "bert",
                "--teacher_path", str(teacher), "--task_name", "SST-2", "--data_dir", SST2, "--max_seq_length", "32",
                "--batch_size", "4", "--learning_rate", "1e-3", "--logging_steps", "1", "--eval_steps", "2",
                "--seed", "1", *extra]  # fmt: skip

    def squad(*extra: str) -> List[str]:
        return ["--model_type", "bert", "--student_model_name_or_path", str(qa), "--teacher_model_type", "bert",
                "--teacher_path", str(qa), "--task_name", "squad", "--train_file", train_file, "--predict_file",
                dev_file, "--max_seq_length", "24", "--doc_stride", "6", "--max_query_length", "10", "--batch_size",
                "8", "--learning_rate", "1e-3", "--logging_steps", "1", "--eval_steps", "2", "--seed", "1",
                *extra]  # fmt: skip

    def distill(name: str, argv: List[str]) -> Callable[[], Dict[str, float]]:
        def go() -> Dict[str, float]:
            from paddle_binbert.distill.task_distill import main

            out = tmp / name
            return _summary(out, main(argv + ["--output_dir", str(out)]))

        return go

    def squad_finetune(name: str = "run_squad", *extra: str) -> Dict[str, float]:
        from paddle_binbert.train.cli import squad_main as main

        out = tmp / name
        argv = ["--model_name_or_path", str(qa), "--train_file", train_file, "--predict_file", dev_file,
                "--max_seq_length", "24", "--doc_stride", "6", "--max_query_length", "10", "--batch_size", "8",
                "--learning_rate", "1e-3", "--logging_steps", "1", "--eval_steps", "2", "--max_steps", "4",
                "--output_dir", str(out), *extra]  # fmt: skip
        return _summary(out, main(argv))

    def glue_finetune(name: str = "run_glue", *extra: str) -> Dict[str, float]:
        out = tmp / name
        argv = ["--model_name_or_path", str(teacher), "--task_name", "SST-2", "--data_dir", SST2, "--output_dir",
                str(out), "--max_seq_length", "32", "--batch_size", "4", "--learning_rate", "1e-3",
                "--logging_steps", "1", "--eval_steps", "2", "--max_steps", "4", *extra]  # fmt: skip
        return _summary(out, run_glue.main(argv))

    return {
        "glue_bibert": distill("glue_bibert", glue("--num_train_epochs", "1", *BIBERT_FLAGS)),
        "glue_tinybert_length_adaptive": distill(
            "glue_la",
            glue(
                "--method",
                "tinybert",
                "--max_steps",
                "3",
                "--length_adaptive",
                "--pred_distill",
                "--intermediate_distill",
            ),
        ),  # fmt: skip
        "glue_binarybert_half_width": distill(
            "glue_bbert",
            glue("--method", "binarybert", "--half_width", "--half_width_batches", "2", "--max_steps", "2"),
        ),  # fmt: skip
        "squad_bibert": distill("squad_bibert", squad("--max_steps", "4", *BIBERT_FLAGS)),
        "squad_bit_length_adaptive": distill(
            "squad_bit", squad("--method", "bit", "--temperature", "2", "--max_steps", "3", "--length_adaptive")
        ),
        "run_squad": squad_finetune,
        "run_glue": glue_finetune,
        "run_squad_length_adaptive": lambda: squad_finetune("run_squad_la", "--length_adaptive"),
        "run_glue_length_adaptive": lambda: glue_finetune("run_glue_la", "--length_adaptive"),
    }


def collect(tmp: Path) -> Dict[str, Dict[str, float]]:
    """Run every front end of :func:`_runs` in ``tmp``; their numbers by run name."""
    return {name: go() for name, go in _runs(tmp).items()}


@pytest.mark.skipif(not GOLDEN.is_file(), reason="no golden file")
def test_front_ends_give_the_recorded_numbers(tmp_path: Path) -> None:
    golden = json.loads(GOLDEN.read_text())
    now = collect(tmp_path)
    assert sorted(now) == sorted(golden)
    for name, numbers in golden.items():
        assert sorted(now[name]) == sorted(numbers), f"{name}: different entries"
        differ = {
            k: (v, now[name][k])
            for k, v in numbers.items()
            if not math.isclose(v, now[name][k], rel_tol=1e-5, abs_tol=1e-7)
        }
        assert not differ, f"{name}: numbers changed {differ}"


if __name__ == "__main__":
    import tempfile

    if "--write" not in sys.argv:
        raise SystemExit("usage: python -m tests.test_frontend_golden --write")
    with tempfile.TemporaryDirectory() as folder:
        result = collect(Path(folder))
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}: {', '.join(f'{k} ({len(v)} numbers)' for k, v in result.items())}")
    os._exit(0)
