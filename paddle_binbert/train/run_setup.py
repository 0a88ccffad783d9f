"""Run setup shared by the four training front ends.

Teacher fine-tuning (:mod:`paddle_binbert.train.finetune`: ``examples/run_glue.py``,
``examples/run_squad.py``) and distillation (:mod:`paddle_binbert.distill.pipeline`:
``examples/task_distill.py``, ``examples/squad_distill.py``) share their training settings, the
fields of :class:`~paddle_binbert.train.arguments.RunArguments`
(``--output_dir --resume --overwrite_output_dir --batch_size --learning_rate --num_train_epochs
--weight_decay --warmup_ratio --seed --logging_steps --eval_steps --save_steps --max_steps
--device --max_train_examples --max_eval_examples --max_seq_length``) and what they do with them:
the checks of those flags, the output-folder handling (``--resume`` / ``--overwrite_output_dir``),
the seed, PaddleNLP ``TrainingArguments``, logging and the closing fields of ``results.json``.

Safety checks every front end runs before training (issue 25):

* :func:`check_numbers`: every numeric flag is a finite number of the right kind in its range
  (:data:`NUMERIC_FLAGS`), else a ``FlagError`` naming the flag, the range and the value;
* :func:`check_output_dir_flag`: ``--resume`` with ``--overwrite_output_dir`` is refused, and so is an
  ``--output_dir`` that is, contains or would overwrite an input model (:data:`INPUT_PATH_FLAGS`);
* :func:`check_max_seq_length` / :func:`check_positions`: ``--max_seq_length`` must fit the models'
  ``max_position_embeddings``;
* :func:`require_examples`: an empty training or dev set stops the run naming its file;
* :func:`check_run_identity`: a resumed run must keep what defines it (task, method, quantization,
  loss ...), recorded in ``OUTPUT_DIR/run_identity.json`` when it started.

Paddle and PaddleNLP are imported inside the functions that need them, so that the front ends
can validate their command line (and print ``--help``) before loading anything heavy.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

from .arguments import FlagError, RunArguments

__all__ = [
    "COUNT_FLAGS",
    "EmptyDatasetError",
    "INPUT_PATH_FLAGS",
    "LOG_FORMAT",
    "NUMERIC_FLAGS",
    "RUN_IDENTITY_FILE",
    "Range",
    "check_input_paths",
    "check_max_seq_length",
    "check_numbers",
    "check_output_dir_flag",
    "check_positions",
    "check_positive",
    "check_run_identity",
    "check_schedule",
    "make_training_args",
    "config_max_positions",
    "prepare_run",
    "require_examples",
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


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric flag: a finite number (an integer when ``integer``) between
    ``low`` and ``high`` (None: unbounded; inclusive unless ``low_open`` / ``high_open``), or one of
    ``also`` (``--max_steps -1``)."""

    low: Optional[float] = None
    high: Optional[float] = None
    integer: bool = False
    low_open: bool = False
    high_open: bool = False
    also: Tuple[float, ...] = ()
    #: a word put before the range in messages ("positive" -> "positive (an integer >= 1)")
    label: str = ""

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is valid (bools and non-numbers are not)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if value in self.also:
            return True
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        """``an integer >= 1``, ``a finite number in [0, 1)`` ..."""
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"{kind} in {left}{_num(self.low)}, {_num(self.high)}{right}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {_num(self.low)}"
        elif self.high is not None:
            text = f"{kind} {'<' if self.high_open else '<='} {_num(self.high)}"
        else:
            text = kind
        if self.also:
            text += " or " + " or ".join(_num(v) for v in self.also)
        return f"{self.label} ({text})" if self.label else text


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


_COUNT = Range(low=1, integer=True, label="positive")
_POSITIVE = Range(low=0, low_open=True, label="positive")
_FRACTION = Range(low=0, high=1)
_PROBABILITY = Range(low=0, high=1, high_open=True)

#: every numeric flag of the training front ends and its valid values (:func:`check_numbers`).
#: ``--max_seq_length`` is also bounded by the models' ``max_position_embeddings``
#: (:func:`check_max_seq_length`), ``--num_train_epochs`` must be positive when the epochs count
#: (:func:`check_schedule`).
NUMERIC_FLAGS: Dict[str, Range] = {
    # shared training flags
    "batch_size": _COUNT,
    "learning_rate": _POSITIVE,
    "num_train_epochs": Range(low=0),
    "weight_decay": Range(low=0),
    "warmup_ratio": _FRACTION,
    "seed": Range(low=0, high=2**32 - 1, integer=True),
    "logging_steps": _COUNT,
    "eval_steps": _COUNT,
    "save_steps": _COUNT,
    "max_steps": Range(low=1, integer=True, also=(-1,)),
    "max_train_examples": _COUNT,
    "max_eval_examples": _COUNT,
    "max_seq_length": Range(low=3, integer=True),
    # LengthDrop
    "num_sandwich": Range(low=0, integer=True),
    "length_drop_ratio_bound": _PROBABILITY,
    "layer_dropout_prob": _PROBABILITY,
    # distillation
    "temperature": _POSITIVE,
    "clip_lr": _POSITIVE,
    "calibration_batches": Range(low=0, integer=True),
    "split_budget_mb": _POSITIVE,
    "half_width_batches": _COUNT,
    # SQuAD windows and decoding
    "doc_stride": _COUNT,
    "max_query_length": _COUNT,
    "n_best_size": _COUNT,
    "max_answer_length": _COUNT,
}

#: flags naming a model a run reads: its --output_dir must not be, contain or overwrite them
INPUT_PATH_FLAGS = ("teacher_path", "student_model_name_or_path", "model_config", "model_name_or_path")

#: what defines a run (method, quantization, loss ...), written when it starts, compared on resume
RUN_IDENTITY_FILE = "run_identity.json"


def setup_logging() -> None:
    """Send INFO logs to stderr as ``time level logger: message`` (no-op when logging is configured)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


def check_positive(args: Any, names: Iterable[str] = COUNT_FLAGS) -> None:
    """``FlagError`` ("--NAME must be positive, got V") for the first field of ``names`` that is set
    (not None) and below 1 (``args``: a :class:`~paddle_binbert.train.arguments.RunArguments` or any
    settings object with those fields)."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise FlagError(f"--{name} must be positive, got {value}")


def check_schedule(args: RunArguments) -> None:
    """``FlagError`` unless ``--max_steps`` is positive or -1, ``--num_train_epochs`` is positive
    when the epochs count (``--max_steps -1``), ``--save_steps`` is a multiple of ``--eval_steps``
    and ``--warmup_ratio`` lies in [0, 1]."""
    if args.max_steps == 0 or args.max_steps < -1:
        raise FlagError("--max_steps must be positive or -1")
    if args.max_steps == -1 and args.num_train_epochs <= 0:
        raise FlagError("--num_train_epochs must be positive")
    if args.save_steps is not None and (args.eval_steps is None or args.save_steps % args.eval_steps):
        raise FlagError("--save_steps must be a multiple of --eval_steps")
    if not 0.0 <= args.warmup_ratio <= 1.0:
        raise FlagError("--warmup_ratio must be in [0, 1]")


def check_numbers(args: RunArguments, ranges: Mapping[str, Range] = NUMERIC_FLAGS) -> None:
    """``FlagError`` ("--NAME must be <range>, got V") for the first flag of ``ranges`` that ``args``
    has, is set (not None) and is not valid: NaN, infinite, out of range, or of the wrong kind (a
    ``--config`` YAML can give any type). Run it after the defaults are filled in."""
    for name, valid in ranges.items():
        if not hasattr(args, name):
            continue
        value = getattr(args, name)
        if value is not None and not valid.accepts(value):
            raise FlagError(f"--{name} must be {valid.describe()}, got {value!r}")


def _inside(path: str, folder: str) -> bool:
    """Whether ``path`` lies strictly inside ``folder`` (both resolved)."""
    return path != folder and os.path.commonpath([path, folder]) == folder


def _holds_model(folder: str) -> bool:
    return os.path.isdir(folder) and any(
        os.path.isfile(os.path.join(folder, name)) and (name == "config.json" or name.endswith(".pdparams"))
        for name in os.listdir(folder)
    )


def check_input_paths(output_dir: str, inputs: Mapping[str, Optional[str]]) -> Optional[str]:
    """An error message when ``output_dir`` would overwrite one of ``inputs`` (flag -> path; paths that
    do not exist, such as PaddleNLP model names, are ignored), else None.

    Refused: the same folder (any spelling, symlinks resolved); an ``output_dir`` containing the input
    (the run saves its model there, rotates and, with ``--overwrite_output_dir``, deletes checkpoint
    folders); an ``output_dir`` inside the input folder that already holds model files (they would be
    overwritten)."""
    out = os.path.realpath(output_dir)
    for flag, path in inputs.items():
        if not path or not os.path.exists(path):
            continue
        source = os.path.realpath(path)
        what = f"--output_dir {output_dir}"
        if source == out:
            return f"{what} is --{flag} {path}: the run would overwrite its input; choose another --output_dir"
        if _inside(source, out):
            return (
                f"{what} contains --{flag} {path}: the run writes its model and checkpoint-N folders there (and "
                "deletes old ones), which could overwrite its input; choose an --output_dir outside it"
            )
        if _inside(out, source) and _holds_model(out):
            return (
                f"{what} lies inside --{flag} {path} and holds model files that the run would overwrite; "
                "choose another --output_dir"
            )
    return None


def check_output_dir_flag(args: RunArguments) -> None:
    """Create ``--output_dir``; ``FlagError`` when ``--resume`` and ``--overwrite_output_dir`` are
    both given (continue or delete: not both), when ``--output_dir`` is, contains or would overwrite
    a model the run reads (:data:`INPUT_PATH_FLAGS`, :func:`check_input_paths`), or when it is not a
    writable folder or holds a previous run while neither ``--resume`` nor ``--overwrite_output_dir``
    is given (:func:`paddle_binbert.train.output_dir.check_output_dir`)."""
    from .output_dir import check_output_dir

    if args.resume and args.overwrite_output_dir:
        raise FlagError(
            "--resume and --overwrite_output_dir exclude each other: --resume continues the run in "
            f"--output_dir {args.output_dir}, --overwrite_output_dir deletes its checkpoints and starts over; "
            "pass only one"
        )
    error = check_input_paths(args.output_dir, {f: getattr(args, f, None) for f in INPUT_PATH_FLAGS})
    error = error or check_output_dir(args.output_dir, args.resume, args.overwrite_output_dir)
    if error:
        raise FlagError(error)


def config_max_positions(path: Optional[str]) -> Optional[Tuple[int, str]]:
    """``(max_position_embeddings, config file)`` of a checkpoint folder or config.json file, or None
    when ``path`` has no readable config.json giving it (a model name, a bare .pdparams file ...)."""
    if not path:
        return None
    config = os.path.join(path, "config.json") if os.path.isdir(path) else path
    if not (config.endswith(".json") and os.path.isfile(config)):
        return None
    try:
        with open(config, encoding="utf-8") as handle:
            value = json.load(handle).get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value, config


def check_max_seq_length(args: RunArguments, flags: Sequence[str] = INPUT_PATH_FLAGS) -> None:
    """``FlagError`` when ``--max_seq_length`` exceeds the ``max_position_embeddings`` of a model
    named by one of ``flags`` (read from its config.json; models without one are checked when loaded,
    :func:`check_positions`)."""
    for flag in flags:
        path = getattr(args, flag, None)
        found = config_max_positions(path)
        if found and args.max_seq_length > found[0]:
            raise FlagError(
                f"--max_seq_length {args.max_seq_length} exceeds max_position_embeddings {found[0]} of "
                f"--{flag} {path} ({found[1]}): use at most {found[0]}"
            )


def check_positions(max_seq_length: int, models: Mapping[str, Any]) -> None:
    """ValueError when ``max_seq_length`` exceeds the ``max_position_embeddings`` of one of ``models``
    (name -> model or config), naming both numbers."""
    for name, model in models.items():
        config = getattr(model, "config", model)
        limit = getattr(config, "max_position_embeddings", None)
        if limit is not None and max_seq_length > int(limit):
            raise ValueError(
                f"--max_seq_length {max_seq_length} exceeds the {name}'s max_position_embeddings {int(limit)}: "
                f"use at most {int(limit)}"
            )


class EmptyDatasetError(ValueError):
    """A training or dev set without examples (:func:`require_examples`)."""


def require_examples(dataset: Any, path: str, split: str) -> None:
    """:class:`EmptyDatasetError` (a ValueError) naming ``path`` when ``dataset`` (the features read
    from it) is empty: training on an empty training set, or choosing checkpoints on an empty dev set,
    cannot work."""
    if len(dataset) == 0:
        raise EmptyDatasetError(
            f"{path} gave no {split} examples (empty or header-only file?): the {split} set needs at least one"
        )


def _flatten(value: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(value, dict):
        flat: Dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): value}


def check_run_identity(
    output_dir: str,
    identity: Mapping[str, Any],
    resume_from: Optional[str],
    logger: Optional[logging.Logger] = None,
) -> None:
    """Record what defines the run (``identity``: task, method, quantization, loss ... as JSON values)
    in ``OUTPUT_DIR/run_identity.json``; when resuming from a checkpoint (``resume_from``), first
    compare it with the recorded one and raise ValueError naming every differing field (a run
    resumed with another ``--method`` would otherwise continue silently as another model).

    A folder of an older version without the file is resumed as is and gets one."""
    path = os.path.join(output_dir, RUN_IDENTITY_FILE)
    now = json.loads(json.dumps(dict(identity), default=str))
    if resume_from is not None and os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as handle:
                recorded = json.load(handle)
        except (OSError, ValueError) as err:
            raise ValueError(f"{path} is unreadable ({err}); it records what defines the run in {output_dir}") from err
        old, new = _flatten(recorded), _flatten(now)
        differ = sorted(k for k in set(old) | set(new) if old.get(k, "<unset>") != new.get(k, "<unset>"))
        if differ:
            detail = "; ".join(
                f"{k}: recorded {old.get(k, '<unset>')!r}, now {new.get(k, '<unset>')!r}" for k in differ
            )
            raise ValueError(
                f"--resume: the run in {output_dir} was started with another definition ({path}) - {detail}. "
                "Resume with the original flags, or start over with --overwrite_output_dir or another --output_dir"
            )
    elif resume_from is not None and logger is not None:
        logger.info("--resume: %s has no %s (older version); recording this run's definition", output_dir, path)
    from ..io_utils import write_json_atomic

    write_json_atomic(path, now)


def prepare_run(args: RunArguments, logger: Optional[logging.Logger] = None) -> Optional[str]:
    """Start a run in ``--output_dir``: delete a previous run's checkpoints and results with
    ``--overwrite_output_dir``, find the checkpoint to continue from with ``--resume`` and seed
    Python, NumPy and Paddle with ``--seed``. Returns that checkpoint (None: train from scratch)."""
    from paddlenlp.trainer import set_seed

    from .output_dir import clear_previous_run, get_last_checkpoint

    if args.overwrite_output_dir:
        clear_previous_run(args.output_dir)
    resume_from = get_last_checkpoint(args.output_dir) if args.resume else None
    if args.resume and resume_from is None and logger is not None:
        logger.info("--resume: no checkpoint in %s, starting from scratch", args.output_dir)
    set_seed(args.seed)
    return resume_from


def make_training_args(
    output_dir: str,
    batch_size: int,
    learning_rate: float,
    num_train_epochs: float,
    weight_decay: float = 0.01,
    seed: int = 42,
    logging_steps: int = 50,
    save_steps: Optional[int] = None,
    eval_steps: Optional[int] = None,
    max_steps: int = -1,
    device: str = "cpu",
    warmup_ratio: float = 0.1,
    metric_for_best_model: Optional[str] = "acc",
    **extra: Any,
) -> Any:
    """Build ``TrainingArguments`` with this project's defaults.

    Evaluation and checkpointing happen every ``eval_steps`` steps (every epoch when ``eval_steps``
    is None); ``save_steps`` defaults to ``eval_steps`` and must be a multiple of it. The best
    checkpoint by ``metric_for_best_model`` (a key of the metrics dict, without ``eval_``; None
    selects by eval loss) is reloaded at the end; at most 2 checkpoints are kept. AdamW with linear
    warmup (``warmup_ratio``) and linear decay, no VisualDL/W&B reporting, progress bar on,
    dataloader workers 0. ``extra`` overrides or adds any ``TrainingArguments`` field.
    """
    from paddlenlp.trainer import TrainingArguments

    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if eval_steps is not None and eval_steps < 1:
        raise ValueError(f"eval_steps must be positive or None, got {eval_steps}")
    if eval_steps is None:
        if save_steps is not None:
            raise ValueError("save_steps needs eval_steps (without eval_steps, evaluation and saving are per epoch)")
        strategy: Dict[str, Any] = {"evaluation_strategy": "epoch", "save_strategy": "epoch"}
    else:
        save_steps = eval_steps if save_steps is None else save_steps
        if save_steps < 1 or save_steps % eval_steps != 0:
            raise ValueError(
                f"save_steps ({save_steps}) must be a positive multiple of eval_steps ({eval_steps}) "
                "so that every saved checkpoint has been evaluated"
            )
        strategy = {
            "evaluation_strategy": "steps",
            "save_strategy": "steps",
            "eval_steps": eval_steps,
            "save_steps": save_steps,
        }
    greater_is_better = None
    if metric_for_best_model is None:
        metric_for_best_model, greater_is_better = "loss", False
    kwargs: Dict[str, Any] = dict(
        output_dir=output_dir,
        do_train=True,
        do_eval=True,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        learning_rate=learning_rate,
        num_train_epochs=num_train_epochs,
        max_steps=max_steps,
        weight_decay=weight_decay,
        warmup_ratio=warmup_ratio,
        lr_scheduler_type="linear",
        seed=seed,
        logging_steps=logging_steps,
        logging_strategy="steps",
        load_best_model_at_end=True,
        metric_for_best_model=metric_for_best_model,
        greater_is_better=greater_is_better,
        save_total_limit=2,
        disable_tqdm=False,
        report_to=["none"],
        dataloader_num_workers=0,
        device=device,
        **strategy,
    )
    kwargs.update(extra)
    return TrainingArguments(**kwargs)


def training_arguments(args: RunArguments, metric_for_best_model: str, learning_rate: Optional[float] = None):
    """PaddleNLP ``TrainingArguments`` (:func:`make_training_args`) from the
    shared training flags; ``learning_rate`` replaces ``--learning_rate`` (distillation scales it
    by the loss recipe's multiplier); the best checkpoint is chosen by ``metric_for_best_model``."""
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
    args: RunArguments, resumed_from: Optional[str], start: float, train_time: Optional[float] = None
) -> Dict[str, Any]:
    """The closing fields of ``results.json``: ``resumed_from``, ``wall_time_seconds`` (since
    ``start``, a ``time.time()``), ``train_wall_time_seconds`` when ``train_time`` is given, and a
    copy of the parsed flags as ``args``."""
    record: Dict[str, Any] = {"resumed_from": resumed_from, "wall_time_seconds": time.time() - start}
    if train_time is not None:
        record["train_wall_time_seconds"] = train_time
    record["args"] = args.flags()
    return record
