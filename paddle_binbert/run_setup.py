"""Run setup shared by the four training front ends.

``examples/run_glue.py`` (GLUE teacher), :mod:`paddle_binbert.squad_finetune` (SQuAD teacher),
:mod:`paddle_binbert.distill.task_distill` (GLUE distillation) and
:mod:`paddle_binbert.distill.squad_distill` (SQuAD distillation) share their training flags
(``--output_dir --resume --overwrite_output_dir --batch_size --learning_rate --num_train_epochs
--weight_decay --warmup_ratio --seed --logging_steps --eval_steps --save_steps --max_steps
--device --max_train_examples --max_eval_examples --max_seq_length``) and what they do with them:
the checks of those flags, the output-folder handling (``--resume`` / ``--overwrite_output_dir``),
the seed, PaddleNLP ``TrainingArguments``, logging and the closing fields of ``results.json``.

Paddle and PaddleNLP are imported inside the functions that need them, so that the front ends
can validate their command line (and print ``--help``) before loading anything heavy.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any, Dict, Iterable, Optional

__all__ = [
    "COUNT_FLAGS",
    "LOG_FORMAT",
    "add_backbone_flag",
    "add_run_flags",
    "add_training_flags",
    "check_output_dir_flag",
    "check_positive",
    "check_schedule",
    "prepare_run",
    "run_record",
    "setup_logging",
    "training_arguments",
]

#: integer flags of every front end that must be positive when set
COUNT_FLAGS = (
    "max_seq_length",
    "batch_size",
    "logging_steps",
    "eval_steps",
    "save_steps",
    "max_train_examples",
    "max_eval_examples",
)

#: log line format of the front ends
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging() -> None:
    """Send INFO logs to stderr as ``time level logger: message`` (no-op when logging is configured)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


def add_backbone_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--model_name_or_path``, the backbone the fine-tuning front ends start from (read with
    :func:`paddle_binbert.convert.resolve_backbone`)."""
    parser.add_argument(
        "--model_name_or_path",
        default="minilm",
        help="backbone: 'minilm' (bundled all-MiniLM-L6-v2, converted once), a PaddleNLP checkpoint folder, "
        "a Hugging Face BERT folder (converted once) or a PaddleNLP model name such as bert-base-uncased",
    )


def add_training_flags(
    parser: argparse.ArgumentParser,
    *,
    batch_size: int,
    learning_rate: float,
    num_train_epochs: float,
    batch_help: str = "training and evaluation batch size",
    eval_on: str = "dev",
    examples: str = "examples",
) -> None:
    """Add the training flags of the fine-tuning front ends, ``--batch_size`` to ``--max_eval_examples``
    (read by :func:`training_arguments`), with the script's defaults; ``eval_on`` names the dev set
    and ``examples`` what ``--max_train_examples`` / ``--max_eval_examples`` count in their help."""
    p = parser
    p.add_argument("--batch_size", type=int, default=batch_size, help=batch_help)
    p.add_argument("--learning_rate", type=float, default=learning_rate, help="peak learning rate of AdamW")
    p.add_argument("--num_train_epochs", type=float, default=num_train_epochs, help="number of training epochs")
    p.add_argument("--weight_decay", type=float, default=0.01, help="AdamW weight decay (not on bias/LayerNorm)")
    p.add_argument("--warmup_ratio", type=float, default=0.1, help="fraction of steps of linear warmup")
    p.add_argument("--seed", type=int, default=42, help="random seed (initialisation, shuffling, dropout)")
    p.add_argument("--logging_steps", type=int, default=50, help="log the training loss every N steps")
    p.add_argument(
        "--eval_steps",
        type=int,
        default=None,
        help=f"evaluate on {eval_on} and save a checkpoint every N steps; unset: once per epoch",
    )
    p.add_argument(
        "--save_steps",
        type=int,
        default=None,
        help="checkpoint every N steps, a multiple of --eval_steps; unset: same as --eval_steps",
    )
    p.add_argument("--max_steps", type=int, default=-1, help="stop after N optimizer steps (-1: use the epochs)")
    p.add_argument(
        "--max_train_examples",
        type=int,
        default=None,
        help=f"use only the first N training {examples} (quick runs)",
    )
    p.add_argument(
        "--max_eval_examples", type=int, default=None, help=f"use only the first N dev {examples} (quick runs)"
    )


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--device``, ``--resume`` and ``--overwrite_output_dir`` (the fine-tuning front ends' wording;
    the distillation parser keeps the BiBERT release's)."""
    parser.add_argument("--device", default="cpu", help="paddle device: cpu, gpu, gpu:0, ...")
    parser.add_argument("--resume", action="store_true", help="resume from the last checkpoint-N in --output_dir")
    parser.add_argument(
        "--overwrite_output_dir",
        action="store_true",
        help="delete previous checkpoints and results in --output_dir instead of refusing to start",
    )


def check_positive(
    parser: argparse.ArgumentParser, args: argparse.Namespace, names: Iterable[str] = COUNT_FLAGS
) -> None:
    """``parser.error`` ("--NAME must be positive, got V") for the first flag of ``names`` that is set
    (not None) and below 1."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be positive, got {value}")


def check_schedule(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``parser.error`` unless ``--max_steps`` is positive or -1, ``--num_train_epochs`` is positive
    when the epochs count (``--max_steps -1``), ``--save_steps`` is a multiple of ``--eval_steps``
    and ``--warmup_ratio`` lies in [0, 1]."""
    if args.max_steps == 0 or args.max_steps < -1:
        parser.error("--max_steps must be positive or -1")
    if args.max_steps == -1 and args.num_train_epochs <= 0:
        parser.error("--num_train_epochs must be positive")
    if args.save_steps is not None and (args.eval_steps is None or args.save_steps % args.eval_steps):
        parser.error("--save_steps must be a multiple of --eval_steps")
    if not 0.0 <= args.warmup_ratio <= 1.0:
        parser.error("--warmup_ratio must be in [0, 1]")


def check_output_dir_flag(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Create ``--output_dir``; ``parser.error`` when it is not a writable folder or holds a previous
    run while neither ``--resume`` nor ``--overwrite_output_dir`` is given
    (:func:`paddle_binbert.trainer.check_output_dir`)."""
    from .trainer import check_output_dir

    error = check_output_dir(args.output_dir, args.resume, args.overwrite_output_dir)
    if error:
        parser.error(error)


def prepare_run(args: argparse.Namespace, logger: Optional[logging.Logger] = None) -> Optional[str]:
    """Start a run in ``--output_dir``: delete a previous run's checkpoints and results with
    ``--overwrite_output_dir``, find the checkpoint to continue from with ``--resume`` and seed
    Python, NumPy and Paddle with ``--seed``. Returns that checkpoint (None: train from scratch)."""
    from paddlenlp.trainer import set_seed

    from .trainer import clear_previous_run, get_last_checkpoint

    if args.overwrite_output_dir:
        clear_previous_run(args.output_dir)
    resume_from = get_last_checkpoint(args.output_dir) if args.resume else None
    if args.resume and resume_from is None and logger is not None:
        logger.info("--resume: no checkpoint in %s, starting from scratch", args.output_dir)
    set_seed(args.seed)
    return resume_from


def training_arguments(args: argparse.Namespace, metric_for_best_model: str, learning_rate: Optional[float] = None):
    """PaddleNLP ``TrainingArguments`` (:func:`paddle_binbert.trainer.make_training_args`) from the
    shared training flags; ``learning_rate`` replaces ``--learning_rate`` (distillation scales it
    by the loss recipe's multiplier); the best checkpoint is chosen by ``metric_for_best_model``."""
    from .trainer import make_training_args

    return make_training_args(
        output_dir=args.output_dir,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate if learning_rate is None else learning_rate,
        num_train_epochs=args.num_train_epochs,
        weight_decay=args.weight_decay,
        seed=args.seed,
        logging_steps=args.logging_steps,
        save_steps=args.save_steps,
        eval_steps=args.eval_steps,
        max_steps=args.max_steps,
        device=args.device,
        warmup_ratio=args.warmup_ratio,
        metric_for_best_model=metric_for_best_model,
    )


def run_record(
    args: argparse.Namespace, resumed_from: Optional[str], start: float, train_time: Optional[float] = None
) -> Dict[str, Any]:
    """The closing fields of ``results.json``: ``resumed_from``, ``wall_time_seconds`` (since
    ``start``, a ``time.time()``), ``train_wall_time_seconds`` when ``train_time`` is given, and a
    copy of the parsed flags as ``args``."""
    record: Dict[str, Any] = {"resumed_from": resumed_from, "wall_time_seconds": time.time() - start}
    if train_time is not None:
        record["train_wall_time_seconds"] = train_time
    record["args"] = dict(vars(args))
    return record
