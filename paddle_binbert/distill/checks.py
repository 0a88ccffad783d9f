"""Checks and defaults of the distillation settings, before anything heavy is loaded.

:func:`validate_distill_args` runs them in order for a task adapter
(:class:`~paddle_binbert.tasks.base.DistillTask`): the task's own checks, the models, the training
defaults from ``configs/`` (:func:`apply_training_defaults`), the numeric flags, the multi-stage
chain, ``--max_seq_length`` against the models' configs and the output folder. A problem raises
:class:`~paddle_binbert.train.arguments.FlagError` naming the flag (the front end reports it with
``parser.error``).
"""

from __future__ import annotations

import os
from typing import Any, Dict

from ..tasks.base import DistillTask
from ..train import run_setup
from ..train.arguments import DistillArguments, FlagError
from ..train.defaults import training_defaults
from .chain import binarybert_pipeline, parse_chain

__all__ = [
    "FALLBACK_DEFAULTS",
    "MODEL_PATH_FLAGS",
    "apply_training_defaults",
    "check_distill_chain",
    "check_distill_models",
    "check_distill_training",
    "validate_distill_args",
]

#: Last-resort values of the flags that the method and task files (configs/) leave unset.
FALLBACK_DEFAULTS: Dict[str, Any] = dict(batch_size=32, optimizer="adamw")

#: the flags naming the models a distillation reads (their config.json bounds --max_seq_length)
MODEL_PATH_FLAGS = ("teacher_path", "student_model_name_or_path", "model_config")


def apply_training_defaults(args: DistillArguments, task_key: str) -> None:
    """Fill the training settings the user left unset (None) from ``configs/``
    (:func:`~paddle_binbert.train.defaults.training_defaults` of ``--method`` and ``task_key``),
    then from :data:`FALLBACK_DEFAULTS`. ``args.method`` must be resolved."""
    try:
        values = {**FALLBACK_DEFAULTS, **training_defaults(args.method, task_key)}
    except (FileNotFoundError, ValueError) as err:  # no configs/ folder, or a bad YAML file
        raise FlagError(str(err)) from None
    for key, value in values.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def check_distill_models(args: DistillArguments) -> None:
    """``--method`` defaults to bibert and must agree with ``--bi``; ``--teacher_path`` must exist;
    the student defaults to the teacher; a bare state dict without ``--model_config`` takes its
    architecture from the student or teacher folder (``FlagError`` when there is none)."""
    if args.method is None:
        args.method = "bibert"
    if args.bi and args.method != "bibert":
        raise FlagError(f"--bi means the BiBERT method; it conflicts with --method {args.method}")
    if not os.path.exists(args.teacher_path):
        raise FlagError(f"--teacher_path {args.teacher_path} does not exist")
    if args.student_model_name_or_path is None:
        args.student_model_name_or_path = args.teacher_path
    for name in ("teacher_path", "student_model_name_or_path"):
        path = getattr(args, name)
        if os.path.isfile(path) and args.model_config is None:
            folder = next((p for p in (args.student_model_name_or_path, args.teacher_path) if os.path.isdir(p)), None)
            if folder is None:
                raise FlagError(f"--{name} {path} is a bare state dict: pass --model_config (config.json or folder)")
            args.model_config = folder


def check_distill_training(args: DistillArguments) -> None:
    """The training settings: every numeric flag finite and in its range
    (:func:`~paddle_binbert.train.run_setup.check_numbers`, which also covers the LengthDrop flags),
    counts positive, ``--learning_rate --clip_lr --temperature`` positive and the schedule
    (:func:`~paddle_binbert.train.run_setup.check_schedule`)."""
    run_setup.check_numbers(args)
    run_setup.check_positive(args)
    if args.learning_rate <= 0 or args.temperature <= 0 or args.clip_lr <= 0:
        raise FlagError("--learning_rate, --clip_lr and --temperature must be positive")
    if args.calibration_batches < 0:
        raise FlagError(f"--calibration_batches must be >= 0, got {args.calibration_batches}")
    run_setup.check_schedule(args)


def check_distill_chain(args: DistillArguments) -> None:
    """Set ``args.chain``, the stages of a multi-stage run (``--distill_chain``, or BinaryBERT's
    pipeline for ``--method binarybert``; None for one stage), with ``--split_budget_mb`` given to
    its split stages (``FlagError`` on a bad chain or budget, or on ``--half_width`` outside
    BinaryBERT's pipeline)."""
    args.chain = None
    try:
        if args.distill_chain:
            args.chain = parse_chain(args.distill_chain)
        elif args.method == "binarybert":
            args.chain = binarybert_pipeline()
        if args.chain and args.split_budget_mb is not None:
            for stage in args.chain:
                if stage.init == "split" and stage.split_budget_mb is None:
                    stage.split_budget_mb = args.split_budget_mb
    except (ValueError, FileNotFoundError) as err:
        raise FlagError(str(err)) from None
    if args.split_budget_mb is not None and not any(s.init == "split" for s in args.chain or []):
        raise FlagError("--split_budget_mb needs a chain with a split stage (--method binarybert)")
    if args.split_budget_mb is not None and args.split_budget_mb <= 0:
        raise FlagError("--split_budget_mb must be positive")
    if args.half_width:
        if args.distill_chain:
            raise FlagError("--half_width applies to --method binarybert's own pipeline, not to --distill_chain")
        if args.method != "binarybert":
            raise FlagError(
                f"--half_width is BinaryBERT's half-width ternary start: it needs --method binarybert, "
                f"got --method {args.method}"
            )
        if args.half_width_batches < 1:
            raise FlagError("--half_width_batches must be positive")


def validate_distill_args(args: DistillArguments, task: DistillTask) -> None:
    """Fail fast (before any model is loaded) on bad tasks, missing files and bad values; fills in
    the defaults (method, student, training values, chain). ``FlagError`` on the first problem."""
    task.check_flags(args)
    check_distill_models(args)
    apply_training_defaults(args, task.defaults_key(args))
    check_distill_training(args)
    task.check_more_flags(args)
    check_distill_chain(args)
    run_setup.check_max_seq_length(args, MODEL_PATH_FLAGS)
    run_setup.check_output_dir_flag(args)
