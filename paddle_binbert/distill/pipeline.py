"""One distillation run, for every task: :func:`run` (one stage) and :func:`run_distill_chain` (stages).

The sequence is the same for GLUE and SQuAD; a task adapter
(:class:`~paddle_binbert.tasks.base.DistillTask`) supplies the head, the data, the trainer and the
task's ``results.json`` entries:

1. the recipe (:func:`resolve_recipe`): the ``--method``'s quantization preset and loss, with the
   ``quant:`` / ``loss:`` overrides of ``--config``;
2. the data first (an empty or bad file stops the run before anything is deleted or trained);
3. the output folder (:func:`~paddle_binbert.train.run_setup.prepare_run`: ``--resume`` /
   ``--overwrite_output_dir``, seed), teacher and student (:func:`load_models`), the run's identity
   (compared on resume);
4. PaddleNLP's Trainer (:func:`make_distill_trainer`): teacher evaluation, training, the best dev
   checkpoint saved, ``results.json``.

A multi-stage run (``--distill_chain``, BinaryBERT's pipeline) runs :func:`run` per stage through
:func:`paddle_binbert.distill.chain.run_chain`; :func:`build_chain_student` prepares each stage's
student (latent FP weights re-quantized, TWS split, BinaryBERT's half-width start).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from typing import Any, Callable, Dict, Optional, Tuple

from ..length_adaptive.cli import length_drop_settings
from ..quant.config import QuantConfig
from ..tasks.base import DistillTask, tokenizer_dir
from ..train import run_setup
from ..train.arguments import DistillArguments
from .chain import ChainStage, run_chain, stage_dir_name
from .losses import DistillLossConfig
from .recipes import get_method, loss_config_from_flags

__all__ = [
    "HALF_WIDTH_IMPORTANCE",
    "HALF_WIDTH_PLAN_FILE",
    "build_chain_student",
    "check_loss_numbers",
    "halve_student",
    "load_models",
    "loss_config_for",
    "make_distill_trainer",
    "quant_config_for",
    "resolve_recipe",
    "run",
    "run_distill_chain",
    "run_identity",
    "stored_size_mib",
]

logger = logging.getLogger("task_distill")

#: ``--half_width_importance`` values (:func:`paddle_binbert.splitting.half_width.plan_width`)
HALF_WIDTH_IMPORTANCE = ("taylor", "magnitude")
#: the width plan of a ``--half_width`` run, in the first stage's folder (reused when the stage reruns)
HALF_WIDTH_PLAN_FILE = "half_width_plan.json"


def _check_vocab(teacher: Any, student: Any, args: DistillArguments) -> None:
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


def load_models(args: DistillArguments, task: DistillTask, quant_config: Optional[QuantConfig], student: Any = None):
    """Teacher and student, both read with the task's head (``task.load_model``).

    The teacher: FP models get the ``fp`` preset so that attention can be recorded (outputs
    unchanged); a quantized teacher (a previous chain stage) keeps its own quantizer config. The
    student: ``student`` when given (a chain stage prepares it), else the FP initialisation
    quantized with ``quant_config``, or a quantized checkpoint as is.
    """
    from ..models import quant_config_of, quantize_model

    teacher = task.load_model(args.teacher_path, args.model_config, "--teacher_path")
    if quant_config_of(teacher) is None:
        quantize_model(teacher, "fp")
    if student is None:
        student = task.load_model(args.student_model_name_or_path, args.model_config, "--student_model_name_or_path")
        if quant_config_of(student) is None:
            quantize_model(student, quant_config)
        elif args.quant_overrides:
            raise ValueError("the student checkpoint is already quantized; quant: overrides in --config do not apply")
    _check_vocab(teacher, student, args)
    return teacher, student


def quant_config_for(args: DistillArguments, method_name: str) -> QuantConfig:
    """The method's preset with the ``quant:`` overrides of ``--config``."""
    quant_config = QuantConfig.from_preset(get_method(method_name).quant_preset)
    if args.quant_overrides:
        quant_config = QuantConfig.from_dict({**quant_config.to_dict(), **args.quant_overrides}, source=args.config)
    return quant_config


def loss_config_for(args: DistillArguments, method_name: str) -> DistillLossConfig:
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
    for field in dataclasses.fields(loss_config):
        value = getattr(loss_config, field.name)
        positive = field.name in ("temperature", "lr_multiplier")
        valid = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not valid or (value <= 0 if positive else value < 0):
            need = "a positive finite number" if positive else "a finite number >= 0"
            raise ValueError(f"{source} {field.name} must be {need}, got {value!r}")


def run_identity(args: DistillArguments, script: str, method: Any, student: Any, loss: DistillLossConfig):
    """What defines a distillation run in ``--output_dir`` (compared when it is resumed,
    :func:`~paddle_binbert.train.run_setup.check_run_identity`): the task, the method, the student's
    quantization, the loss, the optimizer, batch size, the peak learning rate and the max sequence length
    (a resumed run must see the same batches; more epochs or steps may be given to extend a run) and
    the LengthDrop settings."""
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
        **length_drop_settings(args.length_drop_config()),
    }


def resolve_recipe(
    args: DistillArguments,
    quant_config: Optional[QuantConfig] = None,
    loss_config: Optional[DistillLossConfig] = None,
    student: Any = None,
) -> Tuple[Any, QuantConfig, DistillLossConfig]:
    """The ``--method`` recipe, the student's quantization (a ready ``student``'s own, else
    ``quant_config`` or :func:`quant_config_for`) and the loss (``loss_config`` or
    :func:`loss_config_for`), logged."""
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
    args: DistillArguments,
    task: DistillTask,
    student: Any,
    teacher: Any,
    loss_config: DistillLossConfig,
    tokenizer: Any,
    train_dataset: Any,
    eval_dataset: Any,
) -> Any:
    """A :class:`~paddle_binbert.train.trainer.BinBertTrainer` distilling ``teacher`` into ``student``
    on ``task``: ``TrainingArguments`` with ``--learning_rate`` scaled by the loss recipe's
    ``lr_multiplier`` and the best checkpoint by the task's metric, ``--clip_lr`` for the quantizer
    parameters, the distillation objective (:func:`~paddle_binbert.train.objectives.build_objective`),
    inside LengthDrop's sandwich with the ``--length_adaptive`` flags (logged when on), and the
    task's collator and evaluation (:meth:`~paddle_binbert.tasks.base.DistillTask.trainer_kwargs`)."""
    from ..train.objectives import build_objective
    from ..train.trainer import BinBertTrainer

    training_args = run_setup.training_arguments(
        args, task.metric(args), args.learning_rate * loss_config.lr_multiplier
    )
    length_drop = args.length_drop_config()
    if length_drop is not None:
        logger.info("LengthDrop distillation: %s", length_drop)
    objective = build_objective(teacher, loss_config, task.is_regression(args), length_drop)
    return BinBertTrainer(
        model=student,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        tokenizer=tokenizer,
        objective=objective,
        clip_lr=args.clip_lr,
        optimizer_name=args.optimizer,
        calibration_batches=args.calibration_batches,
        group_by_length=not args.no_group_by_length,
        **task.trainer_kwargs(args, tokenizer),
    )


def run(
    args: DistillArguments,
    task: DistillTask,
    quant_config: Optional[QuantConfig] = None,
    loss_config: Optional[DistillLossConfig] = None,
    student: Any = None,
) -> Dict[str, Any]:
    """Distil on ``task``, keep the best dev checkpoint, save the student and write ``results.json``.

    ``quant_config`` / ``loss_config`` default to the method's (with the ``--config`` overrides);
    ``student`` (a ready model, as a chain stage prepares it) replaces loading
    ``--student_model_name_or_path``. Returns what ``results.json`` holds.
    """
    from paddlenlp.transformers import BertTokenizer

    from ..accounting import flops_g, size_mib
    from ..models import quant_config_of
    from ..train.output_dir import write_results

    start = time.time()
    method, quant_config, loss_config = resolve_recipe(args, quant_config, loss_config, student)
    tokenizer = BertTokenizer.from_pretrained(tokenizer_dir(args))
    # data first: a bad or empty file stops the run before anything is deleted or trained
    train_ds, dev = task.load_data(args, tokenizer)
    resume_from = run_setup.prepare_run(args, logger)
    teacher, student = load_models(args, task, quant_config, student)
    run_setup.check_positions(args.max_seq_length, {"teacher": teacher, "student": student})
    identity = run_identity(args, task.script, method, student, loss_config)
    run_setup.check_run_identity(args.output_dir, identity, resume_from, logger)
    metric = task.metric(args)
    trainer = make_distill_trainer(args, task, student, teacher, loss_config, tokenizer, train_ds, dev)
    teacher_metrics = trainer.evaluate_model(teacher, metric_key_prefix="teacher")
    task.log_teacher(teacher_metrics)
    train_result = trainer.train(resume_from_checkpoint=resume_from)
    student_metrics = trainer.evaluate(metric_key_prefix="eval")
    task_results = task.results(args, trainer, train_ds, dev, teacher, loss_config)
    trainer.save_model(args.output_dir)
    trainer.save_state()

    qc = quant_config_of(student)
    results = {
        "task": args.task_name,
        "method": method.name,
        "bits": qc.bits_str,
        "main_metric": metric,
        "teacher": task.metrics(teacher_metrics, "teacher_"),
        "student": task.metrics(student_metrics, "eval_"),
        "student_size_mib": stored_size_mib(student),
        "teacher_size_mib": size_mib(teacher.config, (32, 32, 32)),
        "student_gflops": flops_g(student.config, qc.bits, args.max_seq_length),
        "loss": loss_config.weights(),
        **length_drop_settings(args.length_drop_config()),
        "epochs": trainer.state.epoch,
        "global_steps": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        **task_results,
        "train_loss": train_result.training_loss,
        **run_setup.run_record(args, resume_from, start),
    }
    write_results(args.output_dir, results)
    print(task.summary_line(results, qc.bits_str), flush=True)
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


def halve_student(args: DistillArguments, task: DistillTask, model: Any, stage_dir: str) -> Dict[str, Any]:
    """``--half_width``: keep the most important half of the heads and FFN neurons of ``model``, in place.

    Importance (:func:`~paddle_binbert.splitting.half_width.plan_width`, ``--half_width_importance``):
    ``taylor`` = ``E_x |sum a * dL/da|`` of every head's context / FFN neuron's activation under the
    task loss, on ``task.importance_batches(args)`` (Michel et al., NeurIPS 2019); ``magnitude`` =
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
        batches = task.importance_batches(args) if args.half_width_importance == "taylor" else None
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
    args: DistillArguments,
    task: DistillTask,
    stage: ChainStage,
    quant: Optional[QuantConfig],
    previous_dir: Optional[str],
    stage_dir: str,
) -> Tuple[Any, Dict[str, Any]]:
    """The student of a chain stage (see :class:`~paddle_binbert.distill.chain.ChainStage` ``init``),
    read with the task's head.

    ``previous``/``teacher``: the checkpoint as is when it already has ``quant``, else its latent FP
    weights (:func:`~paddle_binbert.models.latent_fp_model`) quantized with ``quant``; with
    ``--half_width`` the ``teacher`` initialisation is halved first (:func:`halve_student`). ``split``:
    TWS of the previous (ternary) stage's best student
    (:func:`~paddle_binbert.splitting.half_width.widen_by_split`: a half-width student comes out with
    the full-width binary weight count), on the matrices an exact knapsack picks under
    ``split_budget_mb`` (all when unset); the plan is written to ``split_plan.txt``.
    """
    from ..models import latent_fp_model, quant_config_of, quantize_model
    from ..splitting import plan_adaptive_split, widen_by_split

    flag = "--student_model_name_or_path"
    extra: Dict[str, Any] = {}
    if stage.init == "split":
        if previous_dir is None:
            raise ValueError(f"chain stage {stage.label}: init 'split' needs a previous (ternary) stage")
        ternary = task.load_model(previous_dir, args.model_config, flag)
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
    if source == args.teacher_path:
        flag = "--teacher_path"
    model = task.load_model(source, args.model_config, flag)
    existing = quant_config_of(model)
    if existing is not None and existing.to_dict() != quant.to_dict():
        model, existing = latent_fp_model(model), None
    if args.half_width and stage.init == "teacher":
        extra.update(halve_student(args, task, model, stage_dir))
    if existing is None:
        quantize_model(model, quant)
    return model, extra


StageRun = Callable[[DistillArguments, Optional[QuantConfig], DistillLossConfig, Any], Dict[str, Any]]


def run_distill_chain(args: DistillArguments, task: DistillTask, run_fn: Optional[StageRun] = None) -> Dict[str, Any]:
    """Run ``args.chain`` (``--distill_chain`` or BinaryBERT's pipeline) on ``task``, each stage with
    ``run_fn(stage_args, quant, loss, student)`` (default: :func:`run` on ``task``); only the final
    stage is trained with LengthDrop (``--length_adaptive``)."""
    from ..train.output_dir import clear_previous_run

    def default_run(stage_args: DistillArguments, quant: Any, loss: DistillLossConfig, student: Any):
        return run(stage_args, task, quant, loss, student)

    run_stage_fn = run_fn or default_run
    if args.overwrite_output_dir:
        clear_previous_run(args.output_dir)
    final_dir = os.path.normpath(os.path.join(args.output_dir, stage_dir_name(len(args.chain), args.chain[-1])))

    def run_stage(stage_args: DistillArguments, quant: Any, loss: DistillLossConfig, student: Any):
        # --length_adaptive applies to the final stage only (the model that comes out of the chain)
        stage_args.length_adaptive = args.length_adaptive and os.path.normpath(stage_args.output_dir) == final_dir
        return run_stage_fn(stage_args, quant, loss, student)

    return run_chain(
        args,
        args.chain,
        base_quant=lambda name: quant_config_for(args, name),
        default_loss=lambda name: loss_config_for(args, name),
        build_student=lambda stage, quant, prev, out: build_chain_student(args, task, stage, quant, prev, out),
        run_stage=run_stage,
        metric=task.metric(args),
    )
