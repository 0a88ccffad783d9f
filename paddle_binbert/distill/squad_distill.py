"""SQuAD v1.1 distillation of a fine-tuned QA teacher into a binarized student (``examples/squad_distill.py``).

    python examples/squad_distill.py --teacher_path runs/squad_teacher \\
        --train_file squad/mini_train-v1.1.json --predict_file squad/mini_dev-v1.1.json \\
        --output_dir runs/squad_bibert --bi --pred_distill --query_distill --key_distill \\
        --value_distill --intermediate_distill

Same command line as ``task_distill.py`` (every BiBERT-release flag, ``--method``, ``--config``
YAML, ``--resume`` ...) plus the SQuAD flags of ``run_squad.py`` (``--train_file``,
``--predict_file``, ``--doc_stride``, ``--max_query_length``, ``--n_best_size``,
``--max_answer_length``); ``--data_dir`` may name a folder holding ``train-v1.1.json`` and
``dev-v1.1.json`` instead. Teacher and student are ``BertForQuestionAnswering``; the student is the
student initialisation quantized with the method's QuantConfig. The prediction terms act on the
start and end logits: ``SCE_span = (SCE(z_s^start, z_t^start; T) + SCE(z_s^end, z_t^end; T)) / 2``
(padding masked; :func:`~paddle_binbert.distill.losses.span_soft_cross_entropy`), the hard-label
term is BERT's span loss; the intermediate terms (hidden states, attention scores, Q/K/V
direction matching) are those of the method's recipe, unchanged. Evaluation is the official v1.1
exact match / F1 on ``--predict_file``; the best checkpoint by F1 is kept, ``results.json`` holds
teacher and student EM / F1, the student's size and FLOPs.

``--length_adaptive`` works as in ``task_distill.py``: the full-length student gets the span
distillation loss, the sub-models (Drop-and-Restore: dropped tokens restored at the last layer, so
every token has a start/end logit) the KL to the full student's detached start and end
distributions, averaged; in a chain only the final stage uses LengthDrop.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence

import yaml

from .. import run_setup
from ..length_adaptive.cli import length_drop_settings
from ..quant.config import QuantConfig
from ..squad_finetune import add_squad_arguments, load_squad_sets, validate_squad_arguments
from ..squad_trainer import SQUAD_METRIC, SquadEvaluationMixin, is_squad_task, squad_train_lengths
from .losses import DistillLossConfig
from .task_distill import (
    LENGTH_DROP_NOTE,
    MODEL_PATH_FLAGS,
    apply_training_defaults,
    check_distill_chain,
    check_distill_models,
    check_distill_training,
    first_batches,
    load_models,
    make_distill_trainer,
    parse_with_config,
    resolve_recipe,
    run_distill_chain,
    run_identity,
    stored_size_mib,
    tokenizer_dir,
)
from .task_distill import build_parser as build_glue_parser
from .trainer import DistillationTrainer

__all__ = [
    "SQUAD_FILES",
    "SquadDistillationTrainer",
    "build_parser",
    "load_qa_models",
    "main",
    "parse_args",
    "run",
    "squad_importance_batches",
    "wants_squad",
]

logger = logging.getLogger("squad_distill")

# SQuAD training defaults (batch 16, lr 3e-5, max_seq_len 384, 3 epochs) are in configs/tasks/squad.yaml;
# warmup 0.2 is the parser's default here; evaluation once per epoch unless --eval_steps.
#: file names looked up in ``--data_dir`` when ``--train_file`` / ``--predict_file`` are not given
SQUAD_FILES = {"train_file": "train-v1.1.json", "predict_file": "dev-v1.1.json"}


class SquadDistillationTrainer(SquadEvaluationMixin, DistillationTrainer):
    """:class:`~paddle_binbert.distill.trainer.DistillationTrainer` for extractive QA.

    Training: the distillation objective of ``loss_config`` on span outputs (prediction terms on
    start and end logits, see :func:`~paddle_binbert.distill.losses.span_soft_cross_entropy`).
    Evaluation (student, and teacher through ``evaluate_teacher``): SQuAD v1.1 EM / F1
    (:class:`~paddle_binbert.squad_trainer.SquadEvaluationMixin`).

    Args:
        *args: positional arguments of ``DistillationTrainer``.
        n_best_size: start/end candidates per window and answers kept per question.
        max_answer_length: longest answer, in tokens.
        **kwargs: keyword arguments of ``DistillationTrainer`` (``teacher``, ``loss_config`` ...).
    """

    def __init__(self, *args: Any, n_best_size: int = 20, max_answer_length: int = 30, **kwargs: Any) -> None:
        if kwargs.get("train_lengths") is None:
            kwargs["train_lengths"] = squad_train_lengths(kwargs.get("train_dataset"))
        super().__init__(*args, **kwargs)
        self.n_best_size, self.max_answer_length = n_best_size, max_answer_length


def _flag_value(argv: Sequence[str], flag: str) -> Optional[str]:
    """The value of ``--flag X`` or ``--flag=X`` in ``argv`` (last one wins), else None."""
    value = None
    for i, item in enumerate(argv):
        if item == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif item.startswith(flag + "="):
            value = item.split("=", 1)[1]
    return value


def wants_squad(argv: Optional[Sequence[str]]) -> bool:
    """Whether a ``task_distill.py`` command line asks for SQuAD: ``--task_name squad`` (any spelling
    of :func:`~paddle_binbert.squad_trainer.is_squad_task`) on the command line or as ``task_name``
    in the ``--config`` YAML."""
    argv = list(argv or [])
    task = _flag_value(argv, "--task_name")
    if task is None:
        config = _flag_value(argv, "--config")
        if config and os.path.isfile(config):
            try:
                with open(config, encoding="utf-8") as fh:
                    data = yaml.safe_load(fh)
            except (OSError, yaml.YAMLError):
                return False
            if isinstance(data, dict):
                task = data.get("task_name")
    return is_squad_task(task)


def _action(parser: argparse.ArgumentParser, dest: str) -> argparse.Action:
    return next(a for a in parser._actions if a.dest == dest)


def build_parser() -> argparse.ArgumentParser:
    """``task_distill.py``'s parser (same flags, same help) adapted to SQuAD, plus the SQuAD flags."""
    p = build_glue_parser()
    p.prog = "squad_distill.py"
    p.description = (
        "Distil a fine-tuned BERT QA teacher into a binarized student on SQuAD v1.1 (BiBERT / BiT / BinaryBERT / "
        "BWN / TinyBERT recipes; prediction terms on start and end logits). Defaults: batch 16, lr 3e-5, warmup "
        "0.2, max_seq_length 384, 3 epochs, evaluation (EM / F1) once per epoch."
    )
    task = _action(p, "task_name")
    task.required, task.default = False, "squad"
    task.help = "must be squad (kept so that task_distill.py command lines work unchanged)"
    data = _action(p, "data_dir")
    data.required, data.default = False, None
    data.help = (
        f"folder holding {SQUAD_FILES['train_file']} and {SQUAD_FILES['predict_file']} "
        "(used when --train_file / --predict_file are not given)"
    )
    _action(p, "aug_train").help = "not supported for SQuAD (TinyBERT augmentation is GLUE-only)"
    _action(p, "max_train_examples").help = "use only the first N training questions"
    _action(p, "max_eval_examples").help = "use only the first N dev questions"
    _action(p, "max_seq_length").help = "window length in tokens (default 384)"
    _action(p, "learning_rate").help = "peak learning rate (default 3e-5, configs/tasks/squad.yaml)"
    _action(p, "num_train_epochs").help = "training epochs (default 3)"
    _action(p, "eval_steps").help = "evaluate (EM / F1) and checkpoint every N steps (default: once per epoch)"
    _action(p, "pred_distill").help = "prediction-layer distillation: SCE on start and end logits, averaged"
    _action(p, "length_adaptive").help = _action(p, "length_adaptive").help.replace(
        LENGTH_DROP_NOTE,
        LENGTH_DROP_NOTE.replace(
            "the KL to the full student's detached outputs",
            "the KL to the full student's detached start/end distributions (averaged; Drop-and-Restore gives "
            "every token a logit)",
        ),
    )
    add_squad_arguments(p, data_required=False)
    p.set_defaults(warmup_ratio=0.2)
    return p


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse flags; a ``--config`` YAML gives defaults as in ``task_distill.py``
    (:func:`~paddle_binbert.distill.task_distill.parse_with_config`)."""
    parser = build_parser()
    args = parse_with_config(parser, argv)
    validate_args(parser, args)
    return args


def validate_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fail fast (before any model is loaded) on a non-SQuAD task, missing files and bad values."""
    if not is_squad_task(args.task_name):
        parser.error(f"--task_name {args.task_name!r} is not SQuAD; use task_distill.py for GLUE tasks")
    args.task_name = "squad"
    if args.aug_train:
        parser.error("--aug_train is not supported for SQuAD")
    for flag, name in SQUAD_FILES.items():
        if getattr(args, flag) is None and args.data_dir is not None:
            setattr(args, flag, os.path.join(args.data_dir, name))
    if args.train_file is None or args.predict_file is None:
        parser.error(
            "give --train_file and --predict_file (or --data_dir holding "
            f"{SQUAD_FILES['train_file']} and {SQUAD_FILES['predict_file']})"
        )
    check_distill_models(parser, args)
    apply_training_defaults(args, "squad")
    if not os.path.exists(args.student_model_name_or_path):
        parser.error(f"--student_model_name_or_path {args.student_model_name_or_path} does not exist")
    check_distill_training(parser, args)
    validate_squad_arguments(parser, args)
    # multi-stage runs, as in task_distill.py: --distill_chain, and --method binarybert = its pipeline
    check_distill_chain(parser, args)
    run_setup.check_max_seq_length(parser, args, MODEL_PATH_FLAGS)
    run_setup.check_output_dir_flag(parser, args)


def _check_qa_checkpoint(path: str, flag: str) -> None:
    """Refuse a checkpoint folder whose config names a non-QA head (it would load a wrong classifier)."""
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        return
    import json

    with open(config_file, encoding="utf-8") as fh:
        archs = json.load(fh).get("architectures") or []
    if archs and "BertForQuestionAnswering" not in archs and "BertModel" not in archs:
        raise ValueError(
            f"{flag} {path} holds a {archs[0]}, not a BertForQuestionAnswering: fine-tune a SQuAD "
            "teacher first (examples/run_squad.py)"
        )


def load_qa(path: str, args: argparse.Namespace):
    """A ``BertForQuestionAnswering`` checkpoint (FP or quantized) with BERT's key/value cache off;
    a folder whose config names another head is refused."""
    from paddlenlp.transformers import BertForQuestionAnswering

    from ..checkpoints import load_model

    if os.path.isdir(path):
        _check_qa_checkpoint(path, "--teacher_path" if path == args.teacher_path else "--student_model_name_or_path")
    model = load_model(path, model_class=BertForQuestionAnswering, config=args.model_config)
    model.config.use_cache = False
    model.bert.config.use_cache = False
    return model


def load_qa_models(args: argparse.Namespace, quant_config: Optional[QuantConfig], student: Any = None):
    """Teacher and student as :func:`~paddle_binbert.distill.task_distill.load_models` gives them, as
    ``BertForQuestionAnswering``; ``--max_seq_length`` must fit their position embeddings."""
    teacher, student = load_models(args, quant_config, student, load=load_qa)
    for name, model in (("teacher", teacher), ("student", student)):
        limit = int(model.config.max_position_embeddings)
        if args.max_seq_length > limit:
            raise ValueError(
                f"--max_seq_length {args.max_seq_length} exceeds the {name}'s max_position_embeddings {limit}"
            )
    return teacher, student


def squad_importance_batches(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """``--half_width``'s Taylor batches for SQuAD: the first ``--half_width_batches`` batches of
    ``--batch_size`` training windows (with their start / end positions), in file order."""
    import copy

    from paddlenlp.transformers import BertTokenizer

    from ..squad_trainer import squad_collator

    tokenizer = BertTokenizer.from_pretrained(tokenizer_dir(args))
    wanted = args.half_width_batches * args.batch_size  # questions; each gives at least one window
    few = copy.copy(args)
    few.max_train_examples = wanted if args.max_train_examples is None else min(wanted, args.max_train_examples)
    few.max_eval_examples = 1  # load_squad_sets cuts both sets with the run's window flags
    windows, _ = load_squad_sets(few, tokenizer)
    return first_batches(windows, squad_collator(int(tokenizer.pad_token_id)), args.batch_size, args.half_width_batches)


def run(
    args: argparse.Namespace,
    quant_config: Optional[QuantConfig] = None,
    loss_config: Optional[DistillLossConfig] = None,
    student: Any = None,
) -> Dict[str, Any]:
    """:func:`~paddle_binbert.distill.task_distill.run` (same arguments) for SQuAD: distil, keep the
    best dev checkpoint (F1), save the student, its predictions and ``results.json``."""
    from paddlenlp.transformers import BertTokenizer

    from ..accounting import flops_g, size_mib
    from ..data.squad import SquadFormatError
    from ..models import quant_config_of
    from ..squad_trainer import squad_collator
    from ..trainer import write_results

    start = time.time()
    method, quant_config, loss_config = resolve_recipe(args, quant_config, loss_config, student)
    tokenizer = BertTokenizer.from_pretrained(tokenizer_dir(args))
    # data first: a bad or empty file stops the run before anything is deleted or trained
    try:
        train_ds, dev = load_squad_sets(args, tokenizer)
    except SquadFormatError as err:
        raise SquadFormatError(f"bad SQuAD file: {err}") from err
    run_setup.require_examples(train_ds, args.train_file, "training")
    run_setup.require_examples(dev.features, args.predict_file, "dev")
    logger.info(
        "SQuAD: %d training windows; dev %d questions, %d windows", len(train_ds), len(dev.examples), len(dev.features)
    )
    resume_from = run_setup.prepare_run(args, logger)
    teacher, student = load_qa_models(args, quant_config, student)
    identity = run_identity(args, "squad_distill", method, student, loss_config)
    run_setup.check_run_identity(args.output_dir, identity, resume_from, logger)

    trainer = make_distill_trainer(
        SquadDistillationTrainer,
        args,
        SQUAD_METRIC,
        student,
        teacher,
        loss_config,
        tokenizer,
        train_ds,
        dev,
        data_collator=squad_collator(int(tokenizer.pad_token_id)),
        n_best_size=args.n_best_size,
        max_answer_length=args.max_answer_length,
    )
    teacher_metrics = trainer.evaluate_teacher()
    logger.info("teacher dev: EM %.2f F1 %.2f", teacher_metrics["teacher_exact_match"], teacher_metrics["teacher_f1"])
    train_result = trainer.train(resume_from_checkpoint=resume_from)
    student_metrics = trainer.evaluate(metric_key_prefix="eval")
    pred_file, nbest_file = trainer.write_last_predictions(args.output_dir)
    trainer.save_model(args.output_dir)
    trainer.save_state()

    qc = quant_config_of(student)
    bits = qc.bits
    results = {
        "task": "squad",
        "method": method.name,
        "bits": qc.bits_str,
        "main_metric": SQUAD_METRIC,
        "teacher": {"exact_match": teacher_metrics["teacher_exact_match"], "f1": teacher_metrics["teacher_f1"]},
        "student": {"exact_match": student_metrics["eval_exact_match"], "f1": student_metrics["eval_f1"]},
        "student_size_mib": stored_size_mib(student),
        "teacher_size_mib": size_mib(teacher.config, (32, 32, 32)),
        "student_gflops": flops_g(student.config, bits, args.max_seq_length),
        "teacher_gflops": flops_g(teacher.config, (32, 32, 32), args.max_seq_length),
        "loss": loss_config.weights(),
        "temperature": loss_config.temperature,
        **length_drop_settings(trainer.length_drop),
        "epochs": trainer.state.epoch,
        "global_steps": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_metric": trainer.state.best_metric,
        "num_train_windows": len(train_ds),
        "num_dev_examples": len(dev.examples),
        "num_dev_windows": len(dev.features),
        "predictions_file": pred_file,
        "nbest_predictions_file": nbest_file,
        "train_loss": train_result.training_loss,
        **run_setup.run_record(args, resume_from, start),
    }
    write_results(args.output_dir, results)
    print(
        f"[SQuAD] teacher EM/F1 {results['teacher']['exact_match']:.2f}/{results['teacher']['f1']:.2f} | student "
        f"({method.name} {qc.bits_str}) EM/F1 {results['student']['exact_match']:.2f}/{results['student']['f1']:.2f}"
        f" | student size {results['student_size_mib']:.2f} MiB (teacher {results['teacher_size_mib']:.2f} MiB)",
        flush=True,
    )
    return results


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Entry point of ``examples/squad_distill.py`` (and of ``task_distill.py --task_name squad``)."""
    args = parse_args(argv)
    run_setup.setup_logging()
    if args.chain:
        return run_distill_chain(
            args, run_fn=run, load=load_qa, metric=SQUAD_METRIC, importance_batches=squad_importance_batches
        )
    return run(args)
