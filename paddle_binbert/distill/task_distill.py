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
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Any, Dict, List, Optional

import yaml

from ..data.glue import GLUE_TASKS, check_glue_files, get_task_spec
from ..quant.config import QuantConfig
from ..trainer import check_output_dir
from .recipes import METHODS, get_method, loss_config_from_flags

logger = logging.getLogger("task_distill")

# Per-task defaults of the BiBERT release (distillation.md, "Training defaults").
TASK_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "SST-2": dict(learning_rate=1e-4, num_train_epochs=10, max_seq_length=64, eval_steps=200),
    "CoLA": dict(learning_rate=1e-4, num_train_epochs=50, max_seq_length=64, eval_steps=500),
    "MRPC": dict(learning_rate=2e-4, num_train_epochs=20, max_seq_length=128, eval_steps=200),
    "RTE": dict(learning_rate=1e-5, num_train_epochs=20, max_seq_length=128, eval_steps=200),
    "STS-B": dict(learning_rate=1e-4, num_train_epochs=20, max_seq_length=128, eval_steps=200),
    "QNLI": dict(learning_rate=1e-4, num_train_epochs=10, max_seq_length=128, eval_steps=1000),
    "QQP": dict(learning_rate=1e-4, num_train_epochs=5, max_seq_length=128, eval_steps=1000),
    "MNLI": dict(learning_rate=5e-5, num_train_epochs=5, max_seq_length=128, eval_steps=1000),
    "WNLI": dict(learning_rate=1e-4, num_train_epochs=20, max_seq_length=128, eval_steps=200),
}


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
    g.add_argument("--config", default=None, help="YAML file: CLI flag names as keys, plus optional quant: "
                   "(QuantConfig fields) and loss: (DistillLossConfig weights) sections; CLI flags win")
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
    g = p.add_argument_group("training")
    g.add_argument("--batch_size", type=int, default=32, help="training and evaluation batch size")
    g.add_argument("--learning_rate", type=float, default=None, help="peak AdamW learning rate (task default)")
    g.add_argument("--num_train_epochs", type=float, default=None, help="training epochs (task default)")
    g.add_argument("--weight_decay", type=float, default=0.01, help="AdamW weight decay (not on bias/LayerNorm/"
                   "quantizer parameters)")
    g.add_argument("--warmup_ratio", type=float, default=0.1, help="fraction of steps of linear warmup")
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


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse flags; a ``--config`` YAML provides defaults that explicit flags override."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.quant_overrides, args.loss_overrides = {}, {}
    if args.config:
        if not os.path.isfile(args.config):
            parser.error(f"--config {args.config} does not exist")
        with open(args.config, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
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
    validate_args(parser, args)
    return args


def validate_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fail fast (before any model is loaded) on bad tasks, missing files and bad values."""
    try:
        spec = get_task_spec(args.task_name)
        args.task_name = spec.name
        train_split = "train_aug" if args.aug_train else "train"
        check_glue_files(args.data_dir, spec.name, splits=[train_split, *spec.dev_splits])
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    for key, value in TASK_DEFAULTS.get(spec.name, {}).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
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
            folder = next(
                (p for p in (args.student_model_name_or_path, args.teacher_path) if os.path.isdir(p)), None
            )
            if folder is None:
                parser.error(f"--{name} {path} is a bare state dict: pass --model_config (config.json or folder)")
            args.model_config = folder
    positive = ("max_seq_length", "batch_size", "logging_steps", "eval_steps", "save_steps")
    for name in positive + ("max_train_examples", "max_eval_examples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be positive, got {value}")
    if args.save_steps is not None and args.save_steps % args.eval_steps:
        parser.error("--save_steps must be a multiple of --eval_steps")
    if args.learning_rate <= 0 or args.temperature <= 0:
        parser.error("--learning_rate and --temperature must be positive")
    error = check_output_dir(args.output_dir, args.resume, args.overwrite_output_dir)
    if error:
        parser.error(error)


def _tokenizer_dir(args: argparse.Namespace) -> str:
    for path in (args.student_model_name_or_path, args.teacher_path, args.model_config):
        if path and os.path.isdir(path) and os.path.isfile(os.path.join(path, "vocab.txt")):
            return path
    raise FileNotFoundError("no vocab.txt in the student, teacher or --model_config folder")


def _check_vocab(teacher: Any, student: Any, args: argparse.Namespace) -> None:
    vt, vs = teacher.config.vocab_size, student.config.vocab_size
    if vt != vs:
        raise ValueError(f"teacher vocab_size {vt} ({args.teacher_path}) != student vocab_size {vs} "
                         f"({args.student_model_name_or_path}): they must share one tokenizer")
    vocabs = [os.path.join(p, "vocab.txt") for p in (args.teacher_path, args.student_model_name_or_path)]
    if all(os.path.isfile(v) for v in vocabs):
        with open(vocabs[0], encoding="utf-8") as a, open(vocabs[1], encoding="utf-8") as b:
            if a.read() != b.read():
                raise ValueError(f"{vocabs[0]} and {vocabs[1]} differ: teacher and student must share one tokenizer")


def load_models(args: argparse.Namespace, quant_config: QuantConfig):
    """Teacher (FP models get the ``fp`` preset so that attention can be recorded; outputs unchanged)
    and student (FP initialisation quantized with ``quant_config``, or a quantized checkpoint as is)."""
    from paddlenlp.transformers import BertForSequenceClassification

    from ..models import load_model, quant_config_of, quantize_model

    def load(path: str):
        model = load_model(path, model_class=BertForSequenceClassification, config=args.model_config)
        model.config.use_cache = False
        get = model.bert
        get.config.use_cache = False
        return model

    teacher = load(args.teacher_path)
    if quant_config_of(teacher) is None:
        quantize_model(teacher, "fp")
    student = load(args.student_model_name_or_path)
    if quant_config_of(student) is None:
        quantize_model(student, quant_config)
    elif args.quant_overrides:
        raise ValueError("the student checkpoint is already quantized; quant: overrides in --config do not apply")
    _check_vocab(teacher, student, args)
    return teacher, student


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Distil, keep the best dev checkpoint, save the student and write ``results.json``."""
    from paddlenlp.trainer import set_seed
    from paddlenlp.transformers import BertTokenizer

    from ..accounting import flops_g, size_mib
    from ..data.glue import glue_collator, load_glue_features
    from ..data.metrics import main_metric_name
    from ..models import quant_config_of
    from ..trainer import (
        clear_previous_run,
        get_last_checkpoint,
        glue_compute_metrics,
        make_training_args,
        write_results,
    )
    from .trainer import DistillationTrainer

    start = time.time()
    spec = get_task_spec(args.task_name)
    method = get_method(args.method)
    quant_config = QuantConfig.from_preset(method.quant_preset)
    if args.quant_overrides:
        quant_config = QuantConfig.from_dict({**quant_config.to_dict(), **args.quant_overrides}, source=args.config)
    loss_config = loss_config_from_flags(
        method, args.bi, args.pred_distill, args.intermediate_distill, args.query_distill, args.key_distill,
        args.value_distill, args.att_distill, args.temperature,
    )
    if args.loss_overrides:
        loss_config = loss_config.with_overrides(**args.loss_overrides)
    logger.info("method %s, quantization %s, loss %s", method.name, quant_config.bits_str, loss_config.weights())

    if args.overwrite_output_dir:
        clear_previous_run(args.output_dir)
    resume_from = get_last_checkpoint(args.output_dir) if args.resume else None

    set_seed(args.seed)
    tokenizer = BertTokenizer.from_pretrained(_tokenizer_dir(args))
    teacher, student = load_models(args, quant_config)
    train_split = "train_aug" if args.aug_train else "train"
    train_ds = load_glue_features(args.data_dir, spec.name, train_split, tokenizer, args.max_seq_length,
                                  args.max_train_examples)
    dev_ds = load_glue_features(args.data_dir, spec.name, spec.dev_splits[0], tokenizer, args.max_seq_length,
                                args.max_eval_examples)
    metric = main_metric_name(spec.name)
    training_args = make_training_args(
        output_dir=args.output_dir, batch_size=args.batch_size,
        learning_rate=args.learning_rate * loss_config.lr_multiplier, num_train_epochs=args.num_train_epochs,
        weight_decay=args.weight_decay, seed=args.seed, logging_steps=args.logging_steps,
        save_steps=args.save_steps, eval_steps=args.eval_steps, max_steps=args.max_steps, device=args.device,
        warmup_ratio=args.warmup_ratio, metric_for_best_model=metric,
    )
    trainer = DistillationTrainer(
        model=student, args=training_args, train_dataset=train_ds, eval_dataset=dev_ds, tokenizer=tokenizer,
        data_collator=glue_collator(tokenizer), compute_metrics=glue_compute_metrics(spec.name),
        teacher=teacher, loss_config=loss_config, is_regression=spec.is_regression,
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
        "student_size_mib": size_mib(student.config, bits),
        "teacher_size_mib": size_mib(teacher.config, (32, 32, 32)),
        "student_gflops": flops_g(student.config, bits, args.max_seq_length),
        "loss": loss_config.weights(),
        "epochs": trainer.state.epoch,
        "global_steps": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "num_train_examples": len(train_ds),
        "num_dev_examples": len(dev_ds),
        "train_loss": train_result.training_loss,
        "resumed_from": resume_from,
        "wall_time_seconds": time.time() - start,
        "args": {k: v for k, v in vars(args).items()},
    }
    write_results(args.output_dir, results)
    print(
        f"[{spec.name}] teacher {metric} {results['teacher'].get(metric)} | student ({method.name} {qc.bits_str}) "
        f"{metric} {results['student'].get(metric)} | student size {results['student_size_mib']:.2f} MiB "
        f"(teacher {results['teacher_size_mib']:.2f} MiB)",
        flush=True,
    )
    return results


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Entry point of ``examples/task_distill.py``."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)
