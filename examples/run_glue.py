#!/usr/bin/env python
"""Fine-tune a full-precision BERT teacher on one GLUE task.

Example (SST-2, bundled MiniLM backbone, CPU)::

    python examples/run_glue.py --task_name SST-2 --data_dir glue/SST-2 --output_dir runs/sst2_teacher \\
        --max_seq_length 64 --batch_size 32 --learning_rate 5e-5 --num_train_epochs 1 --eval_steps 500

The best dev checkpoint (by the task's main metric: CoLA mcc, STS-B mean of Pearson/Spearman,
others accuracy) is reloaded at the end and saved to ``--output_dir`` as a PaddleNLP checkpoint
folder (config.json, model_state.pdparams, tokenizer files) together with ``results.json``.
STS-B is trained as regression (one output, MSE).

With ``--length_adaptive`` the model is trained with LengthDrop (Dynamic-TinyBERT): per step the
full model, the smallest and ``--num_sandwich`` random token-budget sub-models; search its budgets
afterwards with ``paddle-binbert search-length`` (examples/search_length.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any, Dict, List, Optional

from paddle_binbert import run_setup
from paddle_binbert.data.glue import GLUE_TASKS, check_glue_files, get_task_spec
from paddle_binbert.length_adaptive.cli import add_length_drop_args, length_drop_settings
from paddle_binbert.train.arguments import FinetuneArguments, FlagError
from paddle_binbert.train.flags import add_backbone_flag, add_run_flags, add_training_flags, run_command

logger = logging.getLogger("run_glue")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the teacher fine-tuning script."""
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


def validate_args(args: FinetuneArguments) -> None:
    """Cheap checks before loading anything heavy (``FlagError`` naming the flag; the numeric
    checks cover the LengthDrop flags)."""
    try:
        args.task_name = get_task_spec(args.task_name).name
        check_glue_files(args.data_dir, args.task_name)
    except (ValueError, FileNotFoundError) as err:
        raise FlagError(str(err)) from None
    run_setup.check_numbers(args)
    run_setup.check_positive(args)
    if args.max_seq_length < 3:
        raise FlagError("--max_seq_length must be at least 3")
    if args.learning_rate <= 0:
        raise FlagError("--learning_rate must be positive")
    run_setup.check_schedule(args)
    run_setup.check_max_seq_length(args, ["model_name_or_path"])
    run_setup.check_output_dir_flag(args)


def _strip_prefix(metrics: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in metrics.items()}


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Parse, validate and :func:`run`; a bad flag or data file exits through ``parser.error``.
    Returns the content written to ``results.json``."""
    return run_command(build_parser(), argv, FinetuneArguments, validate_args, run)


def run(args: FinetuneArguments) -> Dict[str, Any]:
    """Fine-tune (validated ``args``); returns the content written to ``results.json``."""
    # heavy imports only after validation
    import paddle
    from paddlenlp.transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from paddle_binbert.convert import resolve_backbone
    from paddle_binbert.data.glue import glue_collator, glue_split_path, load_glue_features
    from paddle_binbert.data.metrics import main_metric_name
    from paddle_binbert.trainer import BinBertTrainer, glue_compute_metrics, write_results

    spec = get_task_spec(args.task_name)
    start = time.time()
    backbone = resolve_backbone(args.model_name_or_path)
    logger.info("backbone %s -> %s", args.model_name_or_path, backbone)
    try:  # the backbone's position embeddings bound the sequence length (a model name is known only now)
        run_setup.check_positions(args.max_seq_length, {"backbone": BertConfig.from_pretrained(backbone)})
    except ValueError as err:
        raise FlagError(f"{err} (--model_name_or_path {args.model_name_or_path})") from err
    tokenizer = BertTokenizer.from_pretrained(backbone)

    # data first: an empty training or dev set stops the run before anything is deleted or trained
    try:
        train_ds = load_glue_features(
            args.data_dir, spec.name, "train", tokenizer, args.max_seq_length, args.max_train_examples
        )
        run_setup.require_examples(train_ds, glue_split_path(args.data_dir, spec.name, "train"), "train")
        dev_sets = {}
        for split in spec.dev_splits:
            dev_sets[split] = load_glue_features(
                args.data_dir, spec.name, split, tokenizer, args.max_seq_length, args.max_eval_examples
            )
            run_setup.require_examples(dev_sets[split], glue_split_path(args.data_dir, spec.name, split), split)
    except run_setup.EmptyDatasetError as err:
        raise FlagError(str(err)) from err
    logger.info("%s: %d train examples, dev %s", spec.name, len(train_ds), {k: len(v) for k, v in dev_sets.items()})
    resume_from = run_setup.prepare_run(args, logger)
    identity = {"script": "run_glue", "task": spec.name, **length_drop_settings(args.length_drop_config())}
    try:  # a resumed run must be the run it continues
        run_setup.check_run_identity(args.output_dir, identity, resume_from, logger)
    except ValueError as err:
        raise FlagError(str(err)) from err

    # use_cache: the MiniLM config enables BERT's key/value cache, useless for classification
    model_kwargs: Dict[str, Any] = {"num_labels": spec.num_labels, "use_cache": False}
    if not spec.is_regression:
        model_kwargs["id2label"] = dict(enumerate(spec.labels))
        model_kwargs["label2id"] = {label: i for i, label in enumerate(spec.labels)}
    metric = main_metric_name(spec.name)
    training_args = run_setup.training_arguments(args, metric)
    main_dev = spec.dev_splits[0]
    length_drop = args.length_drop_config()
    # fresh parameter-name namespace: optimizer states are saved keyed by parameter/accumulator names,
    # so these must not depend on what else was created in this process for --resume to match them
    with paddle.utils.unique_name.guard():
        model = BertForSequenceClassification.from_pretrained(backbone, **model_kwargs)
        trainer_cls: Any = BinBertTrainer
        trainer_kwargs: Dict[str, Any] = {}
        if length_drop is not None:
            from paddle_binbert.length_adaptive import LengthAdaptiveTrainer

            trainer_cls = LengthAdaptiveTrainer
            trainer_kwargs["length_drop"] = length_drop
        trainer = trainer_cls(
            model=model,
            args=training_args,
            train_dataset=train_ds,
            eval_dataset=dev_sets[main_dev],
            tokenizer=tokenizer,
            data_collator=glue_collator(tokenizer),
            compute_metrics=glue_compute_metrics(spec.name),
            **trainer_kwargs,
        )
        train_result = trainer.train(resume_from_checkpoint=resume_from)
    train_time = time.time() - start

    # the best checkpoint is loaded by now (load_best_model_at_end); evaluate it on every dev split
    dev_metrics: Dict[str, Dict[str, Any]] = {}
    for split, dataset in dev_sets.items():
        dev_metrics[split] = _strip_prefix(trainer.evaluate(eval_dataset=dataset, metric_key_prefix="eval"), "eval_")
    trainer.save_model(args.output_dir)
    trainer.save_state()

    state = trainer.state
    results: Dict[str, Any] = {
        "task": spec.name,
        "model_name_or_path": args.model_name_or_path,
        "backbone": backbone,
        "main_metric": metric,
        "main_metric_value": dev_metrics[main_dev].get(metric),
        "dev": dev_metrics,
        "best_checkpoint": state.best_model_checkpoint,
        "best_metric": state.best_metric,
        "epochs": state.epoch,
        "global_steps": state.global_step,
        "num_train_examples": len(train_ds),
        "num_dev_examples": {k: len(v) for k, v in dev_sets.items()},
        "train_loss": train_result.training_loss,
        "train_metrics": train_result.metrics,
        **length_drop_settings(length_drop),
        **run_setup.run_record(args, resume_from, start, train_time),
    }
    write_results(args.output_dir, results)
    logger.info("dev %s = %s; model and results in %s", metric, results["main_metric_value"], args.output_dir)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
