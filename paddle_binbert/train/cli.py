"""Fine-tuning command lines: ``examples/run_glue.py`` (GLUE teacher) and ``examples/run_squad.py``
(SQuAD teacher). Each parses its flags (shared pieces: :mod:`paddle_binbert.train.flags`) into a
dataclass of :mod:`paddle_binbert.train.arguments` and runs :mod:`paddle_binbert.train.finetune`;
a bad flag or data file exits through ``parser.error``.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional

from ..data.glue import GLUE_TASKS
from ..length_adaptive.cli import add_length_drop_args
from .arguments import FinetuneArguments, SquadFinetuneArguments
from .finetune import run_glue, run_squad, validate_glue_args, validate_squad_args
from .flags import add_backbone_flag, add_run_flags, add_squad_arguments, add_training_flags, run_command

__all__ = ["build_glue_parser", "build_squad_parser", "glue_main", "squad_main"]


def build_glue_parser() -> argparse.ArgumentParser:
    """Command-line options of ``run_glue.py``, the GLUE teacher fine-tuning (every flag documented)."""
    p = argparse.ArgumentParser(
        description="Fine-tune a full-precision BERT teacher on a GLUE task (PaddleNLP Trainer, best dev checkpoint).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_backbone_flag(p)
    p.add_argument("--task_name", required=True, help=f"GLUE task, case-insensitive: {', '.join(GLUE_TASKS)}")
    p.add_argument("--data_dir", required=True, help="folder with the task's train.tsv and dev file(s)")
    p.add_argument("--output_dir", required=True, help="where checkpoints, the final model and results.json go")
    p.add_argument("--max_seq_length", type=int, default=128, help="maximum tokens per example (longer truncated)")
    add_training_flags(p, batch_size=32, learning_rate=2e-5, num_train_epochs=3.0)
    add_length_drop_args(p, note="the full model's loss is the task loss")
    add_run_flags(p)
    return p


def build_squad_parser() -> argparse.ArgumentParser:
    """Command-line options of the SQuAD teacher fine-tuning script (every flag documented)."""
    p = argparse.ArgumentParser(
        prog="run_squad.py",
        description="Fine-tune a full-precision BERT teacher on SQuAD v1.1 (PaddleNLP Trainer, best dev "
        "checkpoint by F1, official exact match / F1).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_backbone_flag(p)
    p.add_argument(
        "--output_dir", required=True, help="where checkpoints, the final model, predictions and results.json go"
    )
    p.add_argument("--max_seq_length", type=int, default=384, help="window length in tokens, special tokens included")
    add_squad_arguments(p)
    add_training_flags(
        p,
        batch_size=16,
        learning_rate=5e-5,
        num_train_epochs=2.0,
        batch_help="training and evaluation batch size (windows)",
        eval_on="--predict_file",
        examples="questions",
    )
    add_length_drop_args(
        p,
        note="the full model's loss is the span loss (mean start/end cross-entropy); the sub-models restore "
        "dropped tokens at the last layer (Drop-and-Restore) and match the full model's start/end distributions",
    )
    add_run_flags(p)
    return p


def glue_main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Entry point of ``examples/run_glue.py``; returns the content written to ``results.json``."""
    return run_command(build_glue_parser(), argv, FinetuneArguments, validate_glue_args, run_glue)


def squad_main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Entry point of ``examples/run_squad.py``; returns the content written to ``results.json``."""
    return run_command(build_squad_parser(), argv, SquadFinetuneArguments, validate_squad_args, run_squad)
