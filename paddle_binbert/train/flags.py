"""Command-line flags shared by the training front ends: one definition (name, type, default, help) each.

``examples/run_glue.py``, ``examples/run_squad.py`` (:mod:`paddle_binbert.train.cli`) and
the distillation parsers (:mod:`paddle_binbert.distill.cli`, GLUE and SQuAD) build their parsers
from these pieces; the LengthDrop group is :func:`paddle_binbert.length_adaptive.cli.add_length_drop_args`.
A parsed command line becomes a dataclass of :mod:`paddle_binbert.train.arguments`
(:meth:`~paddle_binbert.train.arguments.RunArguments.from_flags`).
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, Dict, List, Optional, Type

from .arguments import FlagError, RunArguments

__all__ = ["add_backbone_flag", "add_run_flags", "add_squad_arguments", "add_training_flags", "run_command"]


def run_command(
    parser: argparse.ArgumentParser,
    argv: Optional[List[str]],
    arguments: Type[RunArguments],
    validate: Callable[[Any], None],
    run: Callable[[Any], Dict[str, Any]],
) -> Dict[str, Any]:
    """A fine-tuning front end: parse ``argv`` into the ``arguments`` dataclass, ``validate`` it, set
    up logging and ``run`` it; a :class:`~paddle_binbert.train.arguments.FlagError` (a bad flag or
    data file) exits through ``parser.error``. Returns what ``run`` returns (``results.json``)."""
    from .run_setup import setup_logging

    args = arguments.from_flags(vars(parser.parse_args(argv)))
    try:
        validate(args)
        setup_logging()
        return run(args)
    except FlagError as err:
        parser.error(str(err))


def add_backbone_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--model_name_or_path``, the backbone the fine-tuning front ends start from (read with
    :func:`paddle_binbert.checkpoints.resolve_backbone`)."""
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


def add_squad_arguments(parser: argparse.ArgumentParser, data_required: bool = True) -> argparse._ArgumentGroup:
    """Add the SQuAD data and window flags (shared by ``run_squad.py`` and ``squad_distill.py``)."""
    g = parser.add_argument_group("SQuAD data and windows")
    g.add_argument("--train_file", required=data_required, help="SQuAD v1.1 training JSON (e.g. train-v1.1.json)")
    g.add_argument(
        "--predict_file", required=data_required, help="SQuAD v1.1 dev JSON, evaluated with exact match / F1"
    )
    g.add_argument("--doc_stride", type=int, default=128, help="step, in context tokens, between window starts")
    g.add_argument("--max_query_length", type=int, default=64, help="questions are cut to this many tokens")
    g.add_argument("--n_best_size", type=int, default=20, help="start/end candidates per window in decoding")
    g.add_argument("--max_answer_length", type=int, default=30, help="longest predicted answer, in tokens")
    return g
