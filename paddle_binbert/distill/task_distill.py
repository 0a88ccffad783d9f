"""GLUE task distillation with the BiBERT release's command line (``examples/task_distill.py``).

    python examples/task_distill.py --model_type bert --student_model_name_or_path runs/sst2_teacher \\
        --teacher_model_type bert --teacher_path runs/sst2_teacher --task_name SST-2 \\
        --data_dir glue/SST-2 --max_seq_length 64 --batch_size 32 --learning_rate 1e-4 \\
        --num_train_epochs 1 --output_dir runs/sst2_bibert --bi --pred_distill \\
        --query_distill --key_distill --value_distill --intermediate_distill

The student starts from ``--student_model_name_or_path`` (an FP checkpoint, quantized here with
the method's preset, or an already-quantized checkpoint) and is distilled from the teacher with
PaddleNLP's Trainer. The best dev checkpoint is kept; ``results.json`` holds teacher and student
dev metrics, the student's size and FLOPs, steps and wall time.

``--method binarybert`` runs BinaryBERT's pipeline (ternary intermediate at 2.5x lr, ternary
prediction, TWS split, binary prediction; :mod:`paddle_binbert.distill.chain`). ``--half_width`` starts
it from a half-width ternary student (half of the heads and FFN neurons of every layer, ranked by
``--half_width_importance`` on the first ``--half_width_batches`` training batches,
:mod:`paddle_binbert.splitting.half_width`); the split stage brings the binary weight count back to
the full-width model's.

``--length_adaptive`` (with ``--num_sandwich``, ``--length_drop_ratio_bound``,
``--layer_dropout_prob``, as in ``run_glue.py``) distils with LengthDrop (Dynamic-TinyBERT): per step
the full-length student gets the distillation loss above, the smallest and ``--num_sandwich`` random
token-budget sub-models get the KL to the full student's detached outputs (inplace distillation),
``loss = (loss_distill + KL_smallest + sum KL_random) / (num_sandwich + 2)``. In a multi-stage run
(``--distill_chain``, BinaryBERT's pipeline) only the final stage is trained with LengthDrop.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import yaml

from .. import run_setup
from ..data.glue import GLUE_TASKS, check_glue_files, get_task_spec
from ..length_adaptive.cli import add_length_drop_args, check_length_drop_args, length_drop_config, length_drop_settings
from ..quant.config import QuantConfig
from ..train.defaults import training_defaults
from ..train.optimizers import OPTIMIZERS
from .chain import ChainStage, binarybert_pipeline, parse_chain, run_chain, stage_dir_name
from .losses import DistillLossConfig
from .recipes import METHODS, get_method, loss_config_from_flags

logger = logging.getLogger("task_distill")

#: ``--half_width_importance`` values (:func:`paddle_binbert.splitting.half_width.plan_width`)
HALF_WIDTH_IMPORTANCE = ("taylor", "magnitude")
#: the width plan of a ``--half_width`` run, in the first stage's folder (reused when the stage reruns)
HALF_WIDTH_PLAN_FILE = "half_width_plan.json"

#: Last-resort values of the flags that the method and task files (configs/) leave unset.
FALLBACK_DEFAULTS: Dict[str, Any] = dict(batch_size=32, optimizer="adamw")


def apply_training_defaults(args: argparse.Namespace, task_key: str) -> None:
    """Fill the training flags the user left unset (None) from ``configs/``
    (:func:`~paddle_binbert.train.defaults.training_defaults` of ``--method`` and ``task_key``),
    then from :data:`FALLBACK_DEFAULTS`. ``args.method`` must be resolved."""
    try:
        values = {**FALLBACK_DEFAULTS, **training_defaults(args.method, task_key)}
    except (FileNotFoundError, ValueError) as err:  # no configs/ folder, or a bad YAML file
        raise SystemExit(f"task_distill.py: error: {err}") from None
    for key, value in values.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


#: what ``--length_adaptive`` means for distillation (appended to its help)
LENGTH_DROP_NOTE = (
    "here the full-length student's loss is the distillation loss of --method / the loss flags (teacher on "
    "full-length inputs) and the sub-models get the KL to the full student's detached outputs; works for every "
    "--method (FP tinybert and binarized students). In a multi-stage run (--distill_chain, --method binarybert's "
    "pipeline) only the final stage is trained with LengthDrop, the earlier stages distil normally"
)


def build_parser() -> argparse.ArgumentParser:
    """The BiBERT release's flags plus ``--data_dir --method --config --temperature --eval_steps
    --max_steps --resume`` and a few conveniences; every flag documented."""
    p = argparse.ArgumentParser(
        prog="task_distill.py",
        description="Distil a fine-tuned BERT teacher into a binarized student on a GLUE task "
        "(BiBERT / BiT / BinaryBERT / BWN / TinyBERT recipes). Per-task defaults follow the BiBERT release.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
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
    g = p.add_argument_group("data")
    g.add_argument("--task_name", required=True, help=f"GLUE task, case-insensitive: {', '.join(GLUE_TASKS)}")
    g.add_argument("--data_dir", required=True, help="folder with the task's train.tsv and dev file(s)")
    g.add_argument("--aug_train", action="store_true", help="train on train_aug.tsv (TinyBERT augmentation output)")
    g.add_argument("--max_seq_length", type=int, default=None, help="max tokens per example (task default)")
    g.add_argument("--max_train_examples", type=int, default=None, help="use only the first N training examples")
    g.add_argument("--max_eval_examples", type=int, default=None, help="use only the first N dev examples")
    g = p.add_argument_group("method and losses")
    g.add_argument(
        "--method",
        default=None,
        choices=sorted(METHODS),
        help="student recipe: quantization preset + default losses (default: bibert; --bi implies bibert)",
    )
    g.add_argument(
        "--config",
        default=None,
        help="YAML file: CLI flag names as keys, plus optional quant: "
        "(QuantConfig fields) and loss: (DistillLossConfig weights) sections; CLI flags win",
    )
    g.add_argument("--bi", action="store_true", help="BiBERT mode: Bi-Attention student, BiBERT loss semantics")
    g.add_argument("--pred_distill", action="store_true", help="prediction-layer distillation (SCE; MSE for STS-B)")
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
    add_length_drop_args(p, note=LENGTH_DROP_NOTE)
    g = p.add_argument_group("training")
    g.add_argument(
        "--batch_size", type=int, default=None, help="training and evaluation batch size (method default, else 32)"
    )
    g.add_argument("--learning_rate", type=float, default=None, help="peak learning rate (task / method default)")
    g.add_argument("--num_train_epochs", type=float, default=None, help="training epochs (task default)")
    g.add_argument(
        "--weight_decay",
        type=float,
        default=0.01,
        help="decoupled weight decay of AdamW or BertAdam (not on bias/LayerNorm/quantizer parameters)",
    )
    g.add_argument("--warmup_ratio", type=float, default=0.1, help="fraction of steps of linear warmup")
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
    g.add_argument("--eval_steps", type=int, default=None, help="evaluate and checkpoint every N steps (task default)")
    g.add_argument("--save_steps", type=int, default=None, help="checkpoint every N steps (multiple of --eval_steps)")
    g.add_argument("--max_steps", type=int, default=-1, help="stop after N steps (-1: use the epochs)")
    g.add_argument("--output_dir", required=True, help="checkpoints, the best student and results.json")
    g.add_argument("--device", default="cpu", help="paddle device: cpu, gpu, gpu:0, ...")
    g.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output_dir")
    g.add_argument("--overwrite_output_dir", action="store_true", help="discard a previous run in --output_dir")
    return p


def parse_with_config(parser: argparse.ArgumentParser, argv: Optional[List[str]]) -> argparse.Namespace:
    """Parse ``argv``; a ``--config`` YAML (flag names as keys, plus ``quant:`` / ``loss:`` sections,
    kept as ``args.quant_overrides`` / ``args.loss_overrides``) gives defaults that explicit flags override."""
    args = parser.parse_args(argv)
    args.quant_overrides, args.loss_overrides = {}, {}
    if args.config:
        if not os.path.isfile(args.config):
            parser.error(f"--config {args.config} does not exist")
        try:
            with open(args.config, encoding="utf-8") as fh:
                data = yaml.safe_load(fh) or {}
        except yaml.YAMLError as err:
            parser.error(f"--config {args.config}: invalid YAML: {err}")
        if not isinstance(data, dict):
            parser.error(f"--config {args.config}: expected a mapping at the top level")
        quant, loss = data.pop("quant", {}) or {}, data.pop("loss", {}) or {}
        known = {a.dest for a in parser._actions}
        unknown = sorted(set(data) - known)
        if unknown:
            parser.error(f"--config {args.config}: unknown keys {unknown}; valid keys: flag names, quant, loss")
        parser.set_defaults(**data)
        args = parser.parse_args(argv)
        args.quant_overrides, args.loss_overrides = quant, loss
    return args


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse flags (:func:`parse_with_config`) and validate them."""
    parser = build_parser()
    args = parse_with_config(parser, argv)
    validate_args(parser, args)
    return args


def train_split_name(args: argparse.Namespace) -> str:
    """The GLUE split distilled on: ``train``, or ``train_aug`` with ``--aug_train``."""
    return "train_aug" if args.aug_train else "train"


def validate_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fail fast (before any model is loaded) on bad tasks, missing files and bad values."""
    try:
        spec = get_task_spec(args.task_name)
        args.task_name = spec.name
        check_glue_files(args.data_dir, spec.name, splits=[train_split_name(args), *spec.dev_splits])
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    check_distill_models(parser, args)
    apply_training_defaults(args, spec.name)
    check_distill_training(parser, args)
    check_distill_chain(parser, args)
    run_setup.check_max_seq_length(parser, args, MODEL_PATH_FLAGS)
    run_setup.check_output_dir_flag(parser, args)


#: the flags naming the models a distillation reads (their config.json bounds --max_seq_length)
MODEL_PATH_FLAGS = ("teacher_path", "student_model_name_or_path", "model_config")


def check_distill_models(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--method`` defaults to bibert and must agree with ``--bi``; ``--teacher_path`` must exist;
    the student defaults to the teacher; a bare state dict without ``--model_config`` takes its
    architecture from the student or teacher folder (``parser.error`` when there is none).
    Shared by ``task_distill.py`` and ``squad_distill.py``."""
    if args.method is None:
        args.method = "bibert"
    if args.bi and args.method != "bibert":
        parser.error(f"--bi means the BiBERT method; it conflicts with --method {args.method}")
    if not os.path.exists(args.teacher_path):
        parser.error(f"--teacher_path {args.teacher_path} does not exist")
    if args.student_model_name_or_path is None:
        args.student_model_name_or_path = args.teacher_path
    for name in ("teacher_path", "student_model_name_or_path"):
        path = getattr(args, name)
        if os.path.isfile(path) and args.model_config is None:
            folder = next((p for p in (args.student_model_name_or_path, args.teacher_path) if os.path.isdir(p)), None)
            if folder is None:
                parser.error(f"--{name} {path} is a bare state dict: pass --model_config (config.json or folder)")
            args.model_config = folder


def check_distill_training(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The training flags: the :mod:`paddle_binbert.run_setup` checks (every numeric flag finite and
    in its range, :func:`~paddle_binbert.run_setup.check_numbers`), ``--learning_rate --clip_lr
    --temperature`` positive and the LengthDrop flags (``parser.error`` on a problem). Shared by
    ``task_distill.py`` and ``squad_distill.py``."""
    run_setup.check_numbers(parser, args)
    run_setup.check_positive(parser, args)
    if args.learning_rate <= 0 or args.temperature <= 0 or args.clip_lr <= 0:
        parser.error("--learning_rate, --clip_lr and --temperature must be positive")
    if args.calibration_batches < 0:
        parser.error(f"--calibration_batches must be >= 0, got {args.calibration_batches}")
    run_setup.check_schedule(parser, args)
    check_length_drop_args(parser, args)


def check_distill_chain(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Set ``args.chain``, the stages of a multi-stage run (``--distill_chain``, or BinaryBERT's
    pipeline for ``--method binarybert``; None for one stage), with ``--split_budget_mb`` given to
    its split stages (``parser.error`` on a bad chain or budget, or on ``--half_width`` outside
    BinaryBERT's pipeline). Shared by ``task_distill.py`` and ``squad_distill.py``."""
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
        parser.error(str(err))
    if args.split_budget_mb is not None and not any(s.init == "split" for s in args.chain or []):
        parser.error("--split_budget_mb needs a chain with a split stage (--method binarybert)")
    if args.split_budget_mb is not None and args.split_budget_mb <= 0:
        parser.error("--split_budget_mb must be positive")
    if getattr(args, "half_width", False):
        if args.distill_chain:
            parser.error("--half_width applies to --method binarybert's own pipeline, not to --distill_chain")
        if args.method != "binarybert":
            parser.error(
                f"--half_width is BinaryBERT's half-width ternary start: it needs --method binarybert, "
                f"got --method {args.method}"
            )
        if args.half_width_batches < 1:
            parser.error("--half_width_batches must be positive")


def tokenizer_dir(args: argparse.Namespace) -> str:
    for path in (args.student_model_name_or_path, args.teacher_path, args.model_config):
        if path and os.path.isdir(path) and os.path.isfile(os.path.join(path, "vocab.txt")):
            return path
    raise FileNotFoundError("no vocab.txt in the student, teacher or --model_config folder")


def _check_vocab(teacher: Any, student: Any, args: argparse.Namespace) -> None:
    vt, vs = teacher.config.vocab_size, student.config.vocab_size
    if vt != vs:
        raise ValueError(
            f"teacher vocab_size {vt} ({args.teacher_path}) != student vocab_size {vs} "
            f"({args.student_model_name_or_path}): they must share one tokenizer"
        )
    vocabs = [os.path.join(p, "vocab.txt") for p in (args.teacher_path, args.student_model_name_or_path)]
    if all(os.path.isfile(v) for v in vocabs):
        with open(vocabs[0], encoding="utf-8") as a, open(vocabs[1], encoding="utf-8") as b:
            if a.read() != b.read():
                raise ValueError(f"{vocabs[0]} and {vocabs[1]} differ: teacher and student must share one tokenizer")


Loader = Callable[[str, argparse.Namespace], Any]


def load_classifier(path: str, args: argparse.Namespace):
    """A ``BertForSequenceClassification`` checkpoint (FP or quantized; a bare state dict with
    ``--model_config``), BERT's key/value cache off."""
    from paddlenlp.transformers import BertForSequenceClassification

    from ..checkpoints import load_model

    model = load_model(path, model_class=BertForSequenceClassification, config=args.model_config)
    model.config.use_cache = False
    model.bert.config.use_cache = False
    return model


def load_models(
    args: argparse.Namespace, quant_config: Optional[QuantConfig], student: Any = None, load: Loader = load_classifier
):
    """Teacher and student, both read with ``load``.

    The teacher: FP models get the ``fp`` preset so that attention can be recorded (outputs
    unchanged); a quantized teacher (a previous chain stage) keeps its own quantizer config. The
    student: ``student`` when given (a chain stage prepares it), else the FP initialisation
    quantized with ``quant_config``, or a quantized checkpoint as is.
    """
    from ..models import quant_config_of, quantize_model

    teacher = load(args.teacher_path, args)
    if quant_config_of(teacher) is None:
        quantize_model(teacher, "fp")
    if student is None:
        student = load(args.student_model_name_or_path, args)
        if quant_config_of(student) is None:
            quantize_model(student, quant_config)
        elif args.quant_overrides:
            raise ValueError("the student checkpoint is already quantized; quant: overrides in --config do not apply")
    _check_vocab(teacher, student, args)
    return teacher, student


def quant_config_for(args: argparse.Namespace, method_name: str) -> QuantConfig:
    """The method's preset with the ``quant:`` overrides of ``--config``."""
    quant_config = QuantConfig.from_preset(get_method(method_name).quant_preset)
    if args.quant_overrides:
        quant_config = QuantConfig.from_dict({**quant_config.to_dict(), **args.quant_overrides}, source=args.config)
    return quant_config


def loss_config_for(args: argparse.Namespace, method_name: str) -> DistillLossConfig:
    """The loss of the BiBERT-release flags for the method, with the ``loss:`` overrides of ``--config``."""
    loss_config = loss_config_from_flags(
        get_method(method_name),
        args.bi,
        args.pred_distill,
        args.intermediate_distill,
        args.query_distill,
        args.key_distill,
        args.value_distill,
        args.att_distill,
        args.temperature,
    )
    if args.loss_overrides:
        loss_config = loss_config.with_overrides(**args.loss_overrides)
        check_loss_numbers(loss_config, f"--config {args.config} loss:")
    return loss_config


def check_loss_numbers(loss_config: DistillLossConfig, source: str) -> None:
    """ValueError naming the field when a loss weight is negative or not finite, or the temperature
    or learning-rate multiplier is not a positive finite number (``source`` names where they came from)."""
    import dataclasses
    import math

    for field in dataclasses.fields(loss_config):
        value = getattr(loss_config, field.name)
        positive = field.name in ("temperature", "lr_multiplier")
        valid = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not valid or (value <= 0 if positive else value < 0):
            need = "a positive finite number" if positive else "a finite number >= 0"
            raise ValueError(f"{source} {field.name} must be {need}, got {value!r}")


def run_identity(args: argparse.Namespace, script: str, method: Any, student: Any, loss: DistillLossConfig):
    """What defines a distillation run in ``--output_dir`` (compared when it is resumed,
    :func:`~paddle_binbert.run_setup.check_run_identity`): the task, the method, the student's
    quantization, the loss, the optimizer, batch size, the peak learning rate and the max sequence length
    (a resumed run must see the same batches; more epochs or steps may be given to extend a run) and
    the LengthDrop settings."""
    import dataclasses

    from ..models import quant_config_of

    quant = quant_config_of(student)
    return {
        "script": script,
        "task": args.task_name,
        "method": method.name,
        "quantization": None if quant is None else quant.to_dict(),
        "loss": dataclasses.asdict(loss),
        "optimizer": args.optimizer,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "max_seq_length": args.max_seq_length,
        **length_drop_settings(length_drop_config(args)),
    }


def resolve_recipe(
    args: argparse.Namespace,
    quant_config: Optional[QuantConfig] = None,
    loss_config: Optional[DistillLossConfig] = None,
    student: Any = None,
) -> Tuple[Any, QuantConfig, DistillLossConfig]:
    """The ``--method`` recipe, the student's quantization (a ready ``student``'s own, else
    ``quant_config`` or :func:`quant_config_for`) and the loss (``loss_config`` or
    :func:`loss_config_for`), logged; shared by the GLUE and SQuAD :func:`run`."""
    from ..models import quant_config_of

    method = get_method(args.method)
    if student is not None:
        quant_config = quant_config_of(student)
    elif quant_config is None:
        quant_config = quant_config_for(args, method.name)
    if loss_config is None:
        loss_config = loss_config_for(args, method.name)
    logger.info("method %s, quantization %s, loss %s", method.name, quant_config.bits_str, loss_config.weights())
    return method, quant_config, loss_config


def make_distill_trainer(
    trainer_cls: Callable[..., Any],
    args: argparse.Namespace,
    metric: str,
    student: Any,
    teacher: Any,
    loss_config: DistillLossConfig,
    tokenizer: Any,
    train_dataset: Any,
    eval_dataset: Any,
    **task_kwargs: Any,
) -> Any:
    """A ``trainer_cls`` (:class:`~paddle_binbert.distill.trainer.DistillationTrainer` or a subclass)
    set up from the distillation flags: ``TrainingArguments`` with ``--learning_rate`` scaled by the
    loss recipe's ``lr_multiplier`` and the best checkpoint by ``metric``, ``--clip_lr`` for the
    quantizer parameters and LengthDrop from the ``--length_adaptive`` flags (logged when on);
    ``task_kwargs``: the task's own arguments (collator, metrics ...). Shared by the GLUE and SQuAD
    :func:`run`."""
    training_args = run_setup.training_arguments(args, metric, args.learning_rate * loss_config.lr_multiplier)
    length_drop = length_drop_config(args)
    if length_drop is not None:
        logger.info("LengthDrop distillation: %s", length_drop)
    return trainer_cls(
        model=student,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        tokenizer=tokenizer,
        teacher=teacher,
        loss_config=loss_config,
        clip_lr=args.clip_lr,
        optimizer_name=args.optimizer,
        calibration_batches=args.calibration_batches,
        group_by_length=not args.no_group_by_length,
        length_drop=length_drop,
        **task_kwargs,
    )


def run(
    args: argparse.Namespace,
    quant_config: Optional[QuantConfig] = None,
    loss_config: Optional[DistillLossConfig] = None,
    student: Any = None,
) -> Dict[str, Any]:
    """Distil, keep the best dev checkpoint, save the student and write ``results.json``.

    ``quant_config`` / ``loss_config`` default to the method's (with the ``--config`` overrides);
    ``student`` (a ready model, as a chain stage prepares it) replaces loading
    ``--student_model_name_or_path``.
    """
    from paddlenlp.transformers import BertTokenizer

    from ..accounting import flops_g, size_mib
    from ..data.glue import glue_collator, glue_split_path, load_glue_features
    from ..data.metrics import main_metric_name
    from ..models import quant_config_of
    from ..trainer import glue_compute_metrics, write_results
    from .trainer import DistillationTrainer

    start = time.time()
    spec = get_task_spec(args.task_name)
    method, quant_config, loss_config = resolve_recipe(args, quant_config, loss_config, student)
    tokenizer = BertTokenizer.from_pretrained(tokenizer_dir(args))
    # data first: an empty training or dev set stops the run before anything is deleted or trained
    train_split, dev_split = train_split_name(args), spec.dev_splits[0]
    train_ds = load_glue_features(
        args.data_dir, spec.name, train_split, tokenizer, args.max_seq_length, args.max_train_examples
    )
    run_setup.require_examples(train_ds, glue_split_path(args.data_dir, spec.name, train_split), train_split)
    dev_ds = load_glue_features(
        args.data_dir, spec.name, dev_split, tokenizer, args.max_seq_length, args.max_eval_examples
    )
    run_setup.require_examples(dev_ds, glue_split_path(args.data_dir, spec.name, dev_split), dev_split)
    resume_from = run_setup.prepare_run(args, logger)
    teacher, student = load_models(args, quant_config, student)
    run_setup.check_positions(args.max_seq_length, {"teacher": teacher, "student": student})
    identity = run_identity(args, "task_distill", method, student, loss_config)
    run_setup.check_run_identity(args.output_dir, identity, resume_from, logger)
    metric = main_metric_name(spec.name)
    trainer = make_distill_trainer(
        DistillationTrainer,
        args,
        metric,
        student,
        teacher,
        loss_config,
        tokenizer,
        train_ds,
        dev_ds,
        data_collator=glue_collator(tokenizer),
        compute_metrics=glue_compute_metrics(spec.name),
        is_regression=spec.is_regression,
    )
    teacher_metrics = trainer.evaluate_teacher()
    logger.info("teacher dev: %s", teacher_metrics)
    train_result = trainer.train(resume_from_checkpoint=resume_from)
    student_metrics = trainer.evaluate(metric_key_prefix="eval")
    trainer.save_model(args.output_dir)
    trainer.save_state()

    qc = quant_config_of(student)
    bits = qc.bits
    results = {
        "task": spec.name,
        "method": method.name,
        "bits": qc.bits_str,
        "main_metric": metric,
        "teacher": {k.replace("teacher_", ""): v for k, v in teacher_metrics.items()},
        "student": {k.replace("eval_", ""): v for k, v in student_metrics.items()},
        "student_size_mib": stored_size_mib(student),
        "teacher_size_mib": size_mib(teacher.config, (32, 32, 32)),
        "student_gflops": flops_g(student.config, bits, args.max_seq_length),
        "loss": loss_config.weights(),
        **length_drop_settings(trainer.length_drop),
        "epochs": trainer.state.epoch,
        "global_steps": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "num_train_examples": len(train_ds),
        "num_dev_examples": len(dev_ds),
        "train_loss": train_result.training_loss,
        **run_setup.run_record(args, resume_from, start),
    }
    write_results(args.output_dir, results)
    print(
        f"[{spec.name}] teacher {metric} {results['teacher'].get(metric)} | student ({method.name} {qc.bits_str}) "
        f"{metric} {results['student'].get(metric)} | student size {results['student_size_mib']:.2f} MiB "
        f"(teacher {results['teacher_size_mib']:.2f} MiB)",
        flush=True,
    )
    return results


def stored_size_mib(student: Any) -> float:
    """The student's size in MiB by the papers' convention (:mod:`paddle_binbert.accounting`).

    A TWS split student (two binary matrices per split layer) and a half-width one (q/k/v
    ``[hidden, kept_heads * head_dim]``, FFN ``[hidden, I/2]``, shapes no ``BertConfig`` describes)
    are counted layer by layer from their real shapes
    (:func:`~paddle_binbert.splitting.adaptive.model_size_bytes`), others from the config."""
    from ..accounting import size_mib
    from ..models import quant_config_of
    from ..splitting import half_width_info, split_layers_of
    from ..splitting.adaptive import model_size_bytes

    if split_layers_of(student) or half_width_info(student):
        return model_size_bytes(student) / 2**20
    return size_mib(student.config, quant_config_of(student).bits)


BatchesFn = Callable[[argparse.Namespace], List[Dict[str, Any]]]


def first_batches(features: Any, collate: Callable[[List[Any]], Dict[str, Any]], batch_size: int, count: int):
    """The first ``count`` batches of ``batch_size`` features (file order, the last may be short), collated."""
    n = min(len(features), count * batch_size)
    return [collate([features[j] for j in range(i, min(i + batch_size, n))]) for i in range(0, n, batch_size)]


def glue_importance_batches(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """The labelled batches ``--half_width`` measures the Taylor importance on: the first
    ``--half_width_batches`` training batches of ``--batch_size`` (the training split of the run)."""
    from paddlenlp.transformers import BertTokenizer

    from ..data.glue import glue_collator, load_glue_features

    tokenizer = BertTokenizer.from_pretrained(tokenizer_dir(args))
    wanted = args.half_width_batches * args.batch_size
    limit = wanted if args.max_train_examples is None else min(wanted, args.max_train_examples)
    features = load_glue_features(
        args.data_dir, args.task_name, train_split_name(args), tokenizer, args.max_seq_length, limit
    )
    return first_batches(features, glue_collator(tokenizer), args.batch_size, args.half_width_batches)


def halve_student(
    args: argparse.Namespace, model: Any, stage_dir: str, importance_batches: BatchesFn
) -> Dict[str, Any]:
    """``--half_width``: keep the most important half of the heads and FFN neurons of ``model``, in place.

    Importance (:func:`~paddle_binbert.splitting.half_width.plan_width`, ``--half_width_importance``):
    ``taylor`` = ``E_x |sum a * dL/da|`` of every head's context / FFN neuron's activation under the
    task loss, on ``importance_batches(args)`` (Michel et al., NeurIPS 2019); ``magnitude`` =
    ``||W_unit||^2``. The plan is written to ``stage_dir/half_width_plan.json`` and reused when the
    stage is built again (a resumed run keeps the shapes of its checkpoints). Returns the summary
    stored in the stage's ``results.json`` (``half_width``).
    """
    import json

    from ..io_utils import write_json_atomic
    from ..splitting.half_width import WidthPlan, half_width_info, plan_width, prune_width

    if half_width_info(model) is not None:
        raise ValueError(
            f"the student initialisation {args.student_model_name_or_path} is already half-width: --half_width "
            "halves a full-width student"
        )
    path = os.path.join(stage_dir, HALF_WIDTH_PLAN_FILE)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            plan = WidthPlan.from_dict(json.load(fh))
        logger.info("half width: reusing the plan of %s", path)
    else:
        batches = importance_batches(args) if args.half_width_importance == "taylor" else None
        plan = plan_width(model, keep_ratio=0.5, importance=args.half_width_importance, batches=batches)
        write_json_atomic(path, {**plan.to_dict(), "num_batches": None if batches is None else len(batches)})
    prune_width(model, plan)
    logger.info(
        "half width (%s importance): %d heads and %d FFN neurons per layer; kept heads %s",
        plan.method,
        len(plan.heads[0]),
        len(plan.neurons[0]),
        plan.heads,
    )
    return {
        "half_width": {
            "importance": plan.method,
            "num_attention_heads": len(plan.heads[0]),
            "intermediate_size": len(plan.neurons[0]),
            "heads": plan.heads,
            "plan_file": path,
        }
    }


def build_chain_student(
    args: argparse.Namespace,
    stage: ChainStage,
    quant: Optional[QuantConfig],
    previous_dir: Optional[str],
    stage_dir: str,
    load: Loader = load_classifier,
    importance_batches: Optional[BatchesFn] = None,
) -> Tuple[Any, Dict[str, Any]]:
    """The student of a chain stage (see :class:`~paddle_binbert.distill.chain.ChainStage` ``init``).

    ``previous``/``teacher``: the checkpoint as is when it already has ``quant``, else its latent FP
    weights (:func:`~paddle_binbert.models.latent_fp_model`) quantized with ``quant``; with
    ``--half_width`` the ``teacher`` initialisation is halved first (:func:`halve_student`, Taylor
    importance on ``importance_batches(args)``, default :func:`glue_importance_batches`). ``split``:
    TWS of the previous (ternary) stage's best student
    (:func:`~paddle_binbert.splitting.half_width.widen_by_split`: a half-width student comes out with
    the full-width binary weight count), on the matrices an exact knapsack picks under
    ``split_budget_mb`` (all when unset); the plan is written to ``split_plan.txt``.
    """
    from ..models import latent_fp_model, quant_config_of, quantize_model
    from ..splitting import plan_adaptive_split, widen_by_split

    extra: Dict[str, Any] = {}
    if stage.init == "split":
        if previous_dir is None:
            raise ValueError(f"chain stage {stage.label}: init 'split' needs a previous (ternary) stage")
        ternary = load(previous_dir, args)
        layers = None
        if stage.split_budget_mb is not None:
            plan = plan_adaptive_split(ternary, stage.split_budget_mb)
            layers = plan.chosen
            with open(os.path.join(stage_dir, "split_plan.txt"), "w", encoding="utf-8") as fh:
                fh.write(plan.summary() + "\n")
            logger.info("%s", plan.summary())
            extra["split_plan"] = {
                "budget_mib": stage.split_budget_mb,
                "chosen": plan.chosen,
                "size_mib": plan.total_bytes / 2**20,
            }
        return widen_by_split(ternary, layers), extra
    source = previous_dir if (stage.init == "previous" and previous_dir) else args.student_model_name_or_path
    model = load(source, args)
    existing = quant_config_of(model)
    if existing is not None and existing.to_dict() != quant.to_dict():
        model, existing = latent_fp_model(model), None
    if getattr(args, "half_width", False) and stage.init == "teacher":
        extra.update(halve_student(args, model, stage_dir, importance_batches or glue_importance_batches))
    if existing is None:
        quantize_model(model, quant)
    return model, extra


def run_distill_chain(
    args: argparse.Namespace,
    run_fn: Optional[Callable[..., Dict[str, Any]]] = None,
    load: Loader = load_classifier,
    metric: Optional[str] = None,
    importance_batches: Optional[BatchesFn] = None,
) -> Dict[str, Any]:
    """Run ``args.chain`` (``--distill_chain`` or BinaryBERT's pipeline) with ``run_fn`` (default
    :func:`run`) per stage; models read with ``load``; ``metric`` defaults to the GLUE task's;
    ``importance_batches`` gives ``--half_width``'s Taylor batches (default: the GLUE training set's)."""
    from ..data.metrics import main_metric_name
    from ..trainer import clear_previous_run

    run_fn = run_fn or run
    if args.overwrite_output_dir:
        clear_previous_run(args.output_dir)
    final_dir = os.path.normpath(os.path.join(args.output_dir, stage_dir_name(len(args.chain), args.chain[-1])))

    def run_stage(stage_args: argparse.Namespace, quant: Any, loss: DistillLossConfig, student: Any):
        # --length_adaptive applies to the final stage only (the model that comes out of the chain)
        stage_args.length_adaptive = bool(getattr(args, "length_adaptive", False)) and (
            os.path.normpath(stage_args.output_dir) == final_dir
        )
        return run_fn(stage_args, quant, loss, student)

    return run_chain(
        args,
        args.chain,
        base_quant=lambda name: quant_config_for(args, name),
        default_loss=lambda name: loss_config_for(args, name),
        build_student=lambda stage, quant, prev, out: build_chain_student(
            args, stage, quant, prev, out, load, importance_batches
        ),
        run_stage=run_stage,
        metric=metric or main_metric_name(args.task_name),
    )


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Entry point of ``examples/task_distill.py``; ``--task_name squad`` runs
    :mod:`paddle_binbert.distill.squad_distill` (same flags plus the SQuAD ones)."""
    from .squad_distill import wants_squad  # lazy: squad_distill imports this module

    if wants_squad(sys.argv[1:] if argv is None else argv):
        from .squad_distill import main as squad_main

        return squad_main(argv)
    args = parse_args(argv)
    run_setup.setup_logging()
    if args.chain:
        return run_distill_chain(args)
    return run(args)
