"""Distillation command lines: ``examples/task_distill.py`` (GLUE; ``--task_name squad`` dispatches to
SQuAD), ``examples/squad_distill.py`` and ``paddle-binbert distill``.

    python examples/task_distill.py --model_type bert --student_model_name_or_path runs/sst2_teacher \\
        --teacher_model_type bert --teacher_path runs/sst2_teacher --task_name SST-2 \\
        --data_dir glue/SST-2 --max_seq_length 64 --batch_size 32 --learning_rate 1e-4 \\
        --num_train_epochs 1 --output_dir runs/sst2_bibert --bi --pred_distill \\
        --query_distill --key_distill --value_distill --intermediate_distill

Both parsers are built by :func:`build_parser` from the same flag groups (the BiBERT release's
flags plus ``--data_dir --method --config --temperature --eval_steps --max_steps --resume`` ...);
the SQuAD one changes a few defaults and help texts and adds the SQuAD flags
(:func:`~paddle_binbert.train.flags.add_squad_arguments`). A parsed command line (with the
``--config`` YAML's values, :func:`parse_with_config`) becomes a
:class:`~paddle_binbert.train.arguments.DistillArguments` (GLUE) or
:class:`~paddle_binbert.train.arguments.SquadDistillArguments`, validated by
:func:`~paddle_binbert.distill.checks.validate_distill_args` (a problem: ``parser.error``), and
runs with :func:`~paddle_binbert.distill.pipeline.run` or, for a multi-stage run,
:func:`~paddle_binbert.distill.pipeline.run_distill_chain`.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Dict, List, Optional, Sequence

import yaml

from ..data.glue import GLUE_TASKS
from ..data.squad import is_squad_task
from ..io_utils import read_yaml_mapping
from ..length_adaptive.cli import add_length_drop_args
from ..tasks.base import DistillTask
from ..tasks.glue import GlueTask
from ..tasks.squad import SQUAD_FILES, SquadTask
from ..train.arguments import DistillArguments, FlagError
from ..train.flags import add_squad_arguments
from ..train.optimizers import OPTIMIZERS
from .pipeline import HALF_WIDTH_IMPORTANCE
from .recipes import method_names

__all__ = ["build_parser", "main", "parse_args", "parse_with_config", "squad_main", "task_for", "wants_squad"]

#: what ``--length_adaptive`` means for distillation (appended to its help); {sub} = what the sub-models match
LENGTH_DROP_NOTE = (
    "here the full-length student's loss is the distillation loss of --method / the loss flags (teacher on "
    "full-length inputs) and the sub-models get {sub}; works for every "
    "--method (FP tinybert and binarized students). In a multi-stage run (--distill_chain, --method binarybert's "
    "pipeline) only the final stage is trained with LengthDrop, the earlier stages distil normally"
)

#: the parsers' wording per task family where it differs (flag -> help; the prog and description)
TEXTS: Dict[str, Dict[str, str]] = {
    "glue": {
        "prog": "task_distill.py",
        "description": "Distil a fine-tuned BERT teacher into a binarized student on a GLUE task "
        "(BiBERT / BiT / BinaryBERT / BWN / TinyBERT recipes). Per-task defaults follow the BiBERT release.",
        "task_name": f"GLUE task, case-insensitive: {', '.join(GLUE_TASKS)}",
        "data_dir": "folder with the task's train.tsv and dev file(s)",
        "aug_train": "train on train_aug.tsv (TinyBERT augmentation output)",
        "max_seq_length": "max tokens per example (task default)",
        "max_train_examples": "use only the first N training examples",
        "max_eval_examples": "use only the first N dev examples",
        "pred_distill": "prediction-layer distillation (SCE; MSE for STS-B)",
        "length_drop_sub": "the KL to the full student's detached outputs",
        "learning_rate": "peak learning rate (task / method default)",
        "num_train_epochs": "training epochs (task default)",
        "eval_steps": "evaluate and checkpoint every N steps (task default)",
    },
    "squad": {
        "prog": "squad_distill.py",
        "description": "Distil a fine-tuned BERT QA teacher into a binarized student on SQuAD v1.1 (BiBERT / BiT / "
        "BinaryBERT / BWN / TinyBERT recipes; prediction terms on start and end logits). Defaults: batch 16, lr "
        "3e-5, warmup 0.2, max_seq_length 384, 3 epochs, evaluation (EM / F1) once per epoch.",
        "task_name": "must be squad (kept so that task_distill.py command lines work unchanged)",
        "data_dir": f"folder holding {SQUAD_FILES['train_file']} and {SQUAD_FILES['predict_file']} "
        "(used when --train_file / --predict_file are not given)",
        "aug_train": "not supported for SQuAD (TinyBERT augmentation is GLUE-only)",
        "max_seq_length": "window length in tokens (default 384)",
        "max_train_examples": "use only the first N training questions",
        "max_eval_examples": "use only the first N dev questions",
        "pred_distill": "prediction-layer distillation: SCE on start and end logits, averaged",
        "length_drop_sub": "the KL to the full student's detached start/end distributions (averaged; "
        "Drop-and-Restore gives every token a logit)",
        "learning_rate": "peak learning rate (default 3e-5, configs/tasks/squad.yaml)",
        "num_train_epochs": "training epochs (default 3)",
        "eval_steps": "evaluate (EM / F1) and checkpoint every N steps (default: once per epoch)",
    },
}


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models")
    g.add_argument("--model_type", default="bert", choices=["bert"], help="student architecture family")
    g.add_argument(
        "--student_model_name_or_path",
        default=None,
        help="student initialisation: an FP checkpoint folder (quantized here with the method's preset), an "
        "already-quantized checkpoint, or a bare .pdparams state dict (architecture from --model_config); "
        "default: the teacher",
    )
    g.add_argument("--teacher_model_type", default="bert", choices=["bert"], help="teacher architecture family")
    g.add_argument(
        "--teacher_path",
        required=True,
        help="fine-tuned teacher: a checkpoint folder or a bare .pdparams state dict (as the BiBERT release "
        "ships it; architecture from --model_config or the student folder)",
    )
    g.add_argument(
        "--model_config",
        default=None,
        help="config.json or checkpoint folder giving the architecture of bare .pdparams files",
    )


def _add_data_flags(p: argparse.ArgumentParser, squad: bool, text: Dict[str, str]) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--task_name", required=not squad, default="squad" if squad else None, help=text["task_name"])
    g.add_argument("--data_dir", required=not squad, default=None, help=text["data_dir"])
    g.add_argument("--aug_train", action="store_true", help=text["aug_train"])
    g.add_argument("--max_seq_length", type=int, default=None, help=text["max_seq_length"])
    g.add_argument("--max_train_examples", type=int, default=None, help=text["max_train_examples"])
    g.add_argument("--max_eval_examples", type=int, default=None, help=text["max_eval_examples"])


def _add_loss_flags(p: argparse.ArgumentParser, text: Dict[str, str]) -> None:
    g = p.add_argument_group("method and losses")
    g.add_argument(
        "--method",
        default=None,
        choices=method_names(),
        help="student recipe, configs/methods/<name>.yaml: quantization preset + default losses + training "
        "defaults (default: bibert; --bi implies bibert)",
    )
    g.add_argument(
        "--config",
        default=None,
        help="YAML file: CLI flag names as keys, plus optional quant: "
        "(QuantConfig fields) and loss: (DistillLossConfig weights) sections; CLI flags win",
    )
    g.add_argument("--bi", action="store_true", help="BiBERT mode: Bi-Attention student, BiBERT loss semantics")
    g.add_argument("--pred_distill", action="store_true", help=text["pred_distill"])
    g.add_argument(
        "--intermediate_distill",
        action="store_true",
        help="hidden states: normalised distance under --bi (BiBERT), MSE + attention MSE otherwise (TinyBERT)",
    )
    g.add_argument("--att_distill", action="store_true", help="attention-score MSE (TinyBERT)")
    g.add_argument("--query_distill", action="store_true", help="direction-matching distillation of Q (BiBERT)")
    g.add_argument("--key_distill", action="store_true", help="direction-matching distillation of K (BiBERT)")
    g.add_argument("--value_distill", action="store_true", help="direction-matching distillation of V (BiBERT)")
    g.add_argument("--temperature", type=float, default=1.0, help="softmax temperature of the prediction loss")


def _add_chain_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("multi-stage distillation")
    g.add_argument(
        "--distill_chain",
        default=None,
        help="run stages one after the other, each best student teaching (and initialising) the next: W-E-A bits "
        "such as 32-32-32,1-1-2,1-1-1 (BiT multi-step) applied to --method's preset, or a YAML file with a list of "
        "stages (fields: bits, method, loss, init, teacher, split_budget_mb, name). Stages run in "
        "OUTPUT_DIR/stage<i>_<label>, finished stages are skipped and unfinished ones resume. --method binarybert "
        "without this flag runs BinaryBERT's pipeline (ternary intermediate, ternary prediction, TWS split)",
    )
    g.add_argument(
        "--split_budget_mb",
        type=float,
        default=None,
        help="BinaryBERT adaptive splitting: split only the ternary matrices chosen by an exact 0/1 knapsack so that "
        "the student stays within this size in MiB (default: split every matrix)",
    )
    g.add_argument(
        "--half_width",
        action="store_true",
        help="BinaryBERT's half-width start (--method binarybert only): the FP student is halved before it is "
        "quantized (the most important half of the heads and FFN neurons of every layer kept), trained ternary at "
        "half width, and the split stage's TWS doubles its binary weight count back to the full-width model's",
    )
    g.add_argument(
        "--half_width_importance",
        default="taylor",
        choices=list(HALF_WIDTH_IMPORTANCE),
        help="how --half_width ranks heads and neurons: taylor = first-order Taylor / gate sensitivity "
        "E|a * dL/da| of the task loss on the first --half_width_batches training batches (Michel et al. 2019); "
        "magnitude = squared L2 norm of the weights each head / neuron owns (no data)",
    )
    g.add_argument(
        "--half_width_batches",
        type=int,
        default=8,
        help="training batches (of --batch_size, in file order) the taylor importance of --half_width averages over",
    )


def _add_training_flags(p: argparse.ArgumentParser, squad: bool, text: Dict[str, str]) -> None:
    g = p.add_argument_group("training")
    g.add_argument(
        "--batch_size", type=int, default=None, help="training and evaluation batch size (method default, else 32)"
    )
    g.add_argument("--learning_rate", type=float, default=None, help=text["learning_rate"])
    g.add_argument("--num_train_epochs", type=float, default=None, help=text["num_train_epochs"])
    g.add_argument(
        "--weight_decay",
        type=float,
        default=0.01,
        help="decoupled weight decay of AdamW or BertAdam (not on bias/LayerNorm/quantizer parameters)",
    )
    g.add_argument(
        "--warmup_ratio", type=float, default=0.2 if squad else 0.1, help="fraction of steps of linear warmup"
    )
    g.add_argument(
        "--clip_lr",
        type=float,
        default=1e-4,
        help="peak learning rate of the quantizer parameters "
        "(BiT's alpha/beta, LSQ steps, clip values); same schedule, no weight decay",
    )
    g.add_argument(
        "--optimizer",
        default=None,
        choices=list(OPTIMIZERS),
        help="adamw: Paddle's AdamW, global gradient-norm clipping at 1.0; bertadam: the BERT / BiBERT / BiT "
        "releases' BertAdam (no bias correction, eps 1e-6, each tensor's gradient clipped to norm 1.0); "
        "default: the method's (configs/methods/)",
    )
    g.add_argument(
        "--calibration_batches",
        type=int,
        default=8,
        help="before training from scratch, set the learned activation scales (BiT elastic alpha, LSQ steps) from "
        "the mean |x| of this many random training batches; 0: from the first training batch (BiT release), "
        "which under length-grouped batches holds one sentence length only",
    )
    g.add_argument(
        "--no_group_by_length",
        action="store_true",
        help="plain random batches instead of length-grouped ones (grouping pads less, so it trains faster on CPU)",
    )
    g.add_argument("--seed", type=int, default=42, help="random seed")
    g.add_argument("--logging_steps", type=int, default=50, help="log losses every N steps")
    g.add_argument("--eval_steps", type=int, default=None, help=text["eval_steps"])
    g.add_argument("--save_steps", type=int, default=None, help="checkpoint every N steps (multiple of --eval_steps)")
    g.add_argument("--max_steps", type=int, default=-1, help="stop after N steps (-1: use the epochs)")
    g.add_argument("--output_dir", required=True, help="checkpoints, the best student and results.json")
    g.add_argument("--device", default="cpu", help="paddle device: cpu, gpu, gpu:0, ...")
    g.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output_dir")
    g.add_argument("--overwrite_output_dir", action="store_true", help="discard a previous run in --output_dir")


def build_parser(task: str = "glue") -> argparse.ArgumentParser:
    """The distillation parser of ``task`` (``glue``: ``task_distill.py``; ``squad``:
    ``squad_distill.py``, the same flags with SQuAD defaults and help, plus the SQuAD flags);
    every flag documented."""
    squad = task == "squad"
    text = TEXTS[task]
    p = argparse.ArgumentParser(
        prog=text["prog"],
        description=text["description"],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_model_flags(p)
    _add_data_flags(p, squad, text)
    _add_loss_flags(p, text)
    _add_chain_flags(p)
    add_length_drop_args(p, note=LENGTH_DROP_NOTE.format(sub=text["length_drop_sub"]))
    _add_training_flags(p, squad, text)
    if squad:
        add_squad_arguments(p, data_required=False)
    return p


def parse_with_config(parser: argparse.ArgumentParser, argv: Optional[List[str]]) -> Dict[str, Any]:
    """The parsed flags of ``argv`` as a dict; a ``--config`` YAML (flag names as keys, plus ``quant:`` /
    ``loss:`` sections, returned as ``quant_overrides`` / ``loss_overrides``) gives defaults that
    explicit flags override."""
    args = parser.parse_args(argv)
    quant: Dict[str, Any] = {}
    loss: Dict[str, Any] = {}
    if args.config:
        if not os.path.isfile(args.config):
            parser.error(f"--config {args.config} does not exist")
        try:
            data = read_yaml_mapping(args.config)
        except ValueError as err:
            parser.error(f"--config {err}")
        quant, loss = data.pop("quant", {}) or {}, data.pop("loss", {}) or {}
        known = {a.dest for a in parser._actions}
        unknown = sorted(set(data) - known)
        if unknown:
            parser.error(f"--config {args.config}: unknown keys {unknown}; valid keys: flag names, quant, loss")
        parser.set_defaults(**data)
        args = parser.parse_args(argv)
    return {**vars(args), "quant_overrides": quant, "loss_overrides": loss}


def task_for(name: str) -> DistillTask:
    """The task adapter of ``name`` (``glue`` or ``squad``)."""
    return SquadTask() if name == "squad" else GlueTask()


def parse_args(argv: Optional[List[str]] = None, task: str = "glue") -> DistillArguments:
    """Parse ``argv`` with ``task``'s parser (:func:`parse_with_config`) into the task's arguments
    dataclass and validate it (:func:`~paddle_binbert.distill.checks.validate_distill_args`; a
    problem exits through ``parser.error``)."""
    from .checks import validate_distill_args

    parser = build_parser(task)
    adapter = task_for(task)
    args = adapter.arguments.from_flags(parse_with_config(parser, argv))
    try:
        validate_distill_args(args, adapter)
    except FlagError as err:
        parser.error(str(err))
    return args


def wants_squad(argv: Optional[Sequence[str]]) -> bool:
    """Whether a ``task_distill.py`` command line asks for SQuAD: ``--task_name squad`` (any spelling
    of :func:`~paddle_binbert.data.squad.is_squad_task`) on the command line or as ``task_name``
    in the ``--config`` YAML. Only these two flags are read (argparse, the others left alone)."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    pre.add_argument("--task_name")
    pre.add_argument("--config")
    try:
        known, _ = pre.parse_known_args(list(argv or []))
    except argparse.ArgumentError:  # e.g. --task_name without a value: the full parser reports it
        return False
    task = known.task_name
    if task is None and known.config and os.path.isfile(known.config):
        try:
            with open(known.config, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError):
            return False
        if isinstance(data, dict):
            task = data.get("task_name")
    return is_squad_task(task)


def _main(argv: Optional[List[str]], task: str) -> Dict[str, Any]:
    from ..train.run_setup import setup_logging
    from .pipeline import run, run_distill_chain

    args = parse_args(argv, task)
    setup_logging()
    if args.chain:
        return run_distill_chain(args, task_for(task))
    return run(args, task_for(task))


def squad_main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Entry point of ``examples/squad_distill.py`` (and of ``task_distill.py --task_name squad``)."""
    return _main(argv, "squad")


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Entry point of ``examples/task_distill.py`` and ``paddle-binbert distill``; ``--task_name squad``
    runs :func:`squad_main` (same flags plus the SQuAD ones)."""
    import sys

    if wants_squad(sys.argv[1:] if argv is None else argv):
        return squad_main(argv)
    return _main(argv, "glue")
