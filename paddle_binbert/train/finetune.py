"""Teacher fine-tuning: GLUE (``examples/run_glue.py``) and SQuAD v1.1 (``examples/run_squad.py``).

    python examples/run_glue.py --task_name SST-2 --data_dir glue/SST-2 --output_dir runs/sst2_teacher \\
        --max_seq_length 64 --batch_size 32 --learning_rate 5e-5 --num_train_epochs 1 --eval_steps 500
    python examples/run_squad.py --train_file squad/mini_train-v1.1.json \\
        --predict_file squad/mini_dev-v1.1.json --output_dir runs/squad_teacher

GLUE (:func:`run_glue`): ``BertForSequenceClassification`` trained with the task loss (MSE for
STS-B, regression); the best dev checkpoint by the task's main metric (CoLA mcc, STS-B mean of
Pearson/Spearman, others accuracy) is reloaded at the end and saved to ``--output_dir`` as a
PaddleNLP checkpoint folder (config.json, model_state.pdparams, tokenizer files) together with
``results.json``; every dev split is evaluated (MNLI: matched and mismatched).

SQuAD (:func:`run_squad`), BERT's recipe (Devlin et al., NAACL 2019): every question becomes
``[CLS] question [SEP] context-window [SEP]`` windows (``--max_seq_length`` / ``--doc_stride`` /
``--max_query_length``); a linear head gives start and end logits per token and training minimises
``(CE(z_start, y_start) + CE(z_end, y_end)) / 2``. Evaluation decodes the best span of every
question over all its windows (``--n_best_size``, ``--max_answer_length``) and scores it with the
official v1.1 exact match and F1; the best checkpoint by F1 is saved with ``predictions.json``,
``nbest_predictions.json`` and ``results.json``. ``--model_name_or_path`` may also be an already
fine-tuned ``BertForQuestionAnswering`` checkpoint folder: its QA head is loaded with the encoder.

With ``--length_adaptive`` either model is trained with LengthDrop (Dynamic-TinyBERT): per step the
full model (the task loss), the smallest and ``--num_sandwich`` random token-budget sub-models
(trained towards the full model's outputs; SQuAD: Drop-and-Restore, start/end distributions);
search its budgets afterwards with ``paddle-binbert search-length``.

The parsers and entry points are :mod:`paddle_binbert.train.cli`; these functions take the
dataclasses of :mod:`paddle_binbert.train.arguments` and raise ``FlagError`` on a bad flag or file.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict

from ..data.glue import check_glue_files, get_task_spec
from ..length_adaptive.cli import length_drop_settings
from ..tasks.squad import check_squad_flags, load_squad_sets
from . import run_setup
from .arguments import FinetuneArguments, FlagError, SquadFinetuneArguments

__all__ = [
    "checkpoint_has_qa_head",
    "load_squad_data",
    "run_glue",
    "run_squad",
    "validate_glue_args",
    "validate_squad_args",
]

glue_logger = logging.getLogger("run_glue")
squad_logger = logging.getLogger("run_squad")


def validate_glue_args(args: FinetuneArguments) -> None:
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


def run_glue(args: FinetuneArguments) -> Dict[str, Any]:
    """Fine-tune a GLUE teacher (validated ``args``, :func:`validate_glue_args`); returns the content
    written to ``results.json``. A bad data file or a resumed run of another definition raises ``FlagError``."""
    # heavy imports only after validation
    import paddle
    from paddlenlp.transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from ..checkpoints import resolve_backbone
    from ..data.glue import glue_split_path, load_glue_features
    from ..data.metrics import main_metric_name
    from ..tasks.glue import GlueTask
    from .objectives import build_objective
    from .output_dir import write_results
    from .trainer import BinBertTrainer

    spec = get_task_spec(args.task_name)
    start = time.time()
    backbone = resolve_backbone(args.model_name_or_path)
    glue_logger.info("backbone %s -> %s", args.model_name_or_path, backbone)
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
    glue_logger.info(
        "%s: %d train examples, dev %s", spec.name, len(train_ds), {k: len(v) for k, v in dev_sets.items()}
    )
    resume_from = run_setup.prepare_run(args, glue_logger)
    identity = {"script": "run_glue", "task": spec.name, **length_drop_settings(args.length_drop_config())}
    try:  # a resumed run must be the run it continues
        run_setup.check_run_identity(args.output_dir, identity, resume_from, glue_logger)
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
        trainer = BinBertTrainer(
            model=model,
            args=training_args,
            train_dataset=train_ds,
            eval_dataset=dev_sets[main_dev],
            tokenizer=tokenizer,
            objective=build_objective(length_drop=length_drop),
            **GlueTask().trainer_kwargs(args, tokenizer),
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
    glue_logger.info("dev %s = %s; model and results in %s", metric, results["main_metric_value"], args.output_dir)
    return results


def validate_squad_args(args: SquadFinetuneArguments) -> None:
    """Cheap checks before loading anything heavy (``FlagError`` naming the flag): the numeric
    flags (LengthDrop's included), the SQuAD files and windows, ``--max_seq_length`` against the
    backbone's config and the output folder."""
    run_setup.check_numbers(args)
    run_setup.check_positive(args)
    check_squad_flags(args)
    if args.learning_rate <= 0:
        raise FlagError("--learning_rate must be positive")
    run_setup.check_schedule(args)
    run_setup.check_max_seq_length(args, ["model_name_or_path"])
    run_setup.check_output_dir_flag(args)


def load_squad_data(args: SquadFinetuneArguments, tokenizer: Any, max_positions: int):
    """Training windows and the dev set; a file-format problem (or a ``--max_seq_length`` beyond
    ``max_positions``) raises ``FlagError`` naming the file."""
    from ..data.squad import SquadFormatError

    if args.max_seq_length > max_positions:
        raise FlagError(
            f"--max_seq_length {args.max_seq_length} exceeds the model's max_position_embeddings {max_positions}"
        )
    try:
        train, dev = load_squad_sets(args, tokenizer)
        run_setup.require_examples(train, args.train_file, "training")
        run_setup.require_examples(dev.features, args.predict_file, "dev")
        return train, dev
    except (SquadFormatError, ValueError, OSError) as err:
        raise FlagError(str(err)) from err


def checkpoint_has_qa_head(path: str) -> bool:
    """Whether ``path`` is a local checkpoint folder saved from a ``BertForQuestionAnswering`` (its
    config.json names that architecture), so that ``from_pretrained`` loads its QA head too."""
    import json
    import os

    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        return False
    with open(config_file, encoding="utf-8") as fh:
        return "BertForQuestionAnswering" in (json.load(fh).get("architectures") or [])


def run_squad(args: SquadFinetuneArguments) -> Dict[str, Any]:
    """Fine-tune a SQuAD teacher (validated ``args``, :func:`validate_squad_args`); returns the content written to
    ``results.json``. A bad data file or a resumed run of another definition raises ``FlagError``."""
    # heavy imports only after validation
    import paddle
    from paddlenlp.transformers import BertConfig, BertForQuestionAnswering, BertTokenizer

    from ..checkpoints import resolve_backbone
    from ..tasks.squad import SQUAD_METRIC, SquadTask
    from .objectives import build_objective
    from .output_dir import write_results
    from .trainer import BinBertTrainer

    start = time.time()
    backbone = resolve_backbone(args.model_name_or_path)
    squad_logger.info("backbone %s -> %s", args.model_name_or_path, backbone)
    tokenizer = BertTokenizer.from_pretrained(backbone)
    max_positions = int(BertConfig.from_pretrained(backbone).max_position_embeddings)
    train_ds, dev = load_squad_data(args, tokenizer, max_positions)
    squad_logger.info(
        "SQuAD: %d training windows; dev %d questions, %d windows", len(train_ds), len(dev.examples), len(dev.features)
    )
    # only now (the data and the backbone are fine): delete a previous run (--overwrite_output_dir),
    # find the checkpoint to resume, seed
    resume_from = run_setup.prepare_run(args, squad_logger)
    length_drop = args.length_drop_config()
    try:  # a resumed run must be the run it continues
        identity = {"script": "run_squad", "task": "squad", **length_drop_settings(length_drop)}
        run_setup.check_run_identity(args.output_dir, identity, resume_from, squad_logger)
    except ValueError as err:
        raise FlagError(str(err)) from err

    training_args = run_setup.training_arguments(args, SQUAD_METRIC)
    qa_head = checkpoint_has_qa_head(backbone)
    if qa_head:
        squad_logger.info("%s is a BertForQuestionAnswering checkpoint: its QA head is kept", backbone)
    if length_drop is not None:
        squad_logger.info("LengthDrop training: %s", length_drop)
    # fresh parameter-name namespace so that --resume finds the optimizer states (see run_glue.py)
    with paddle.utils.unique_name.guard():
        # use_cache: the MiniLM config enables BERT's key/value cache, useless here
        model = BertForQuestionAnswering.from_pretrained(backbone, use_cache=False)
        trainer = BinBertTrainer(
            model=model,
            args=training_args,
            train_dataset=train_ds,
            eval_dataset=dev,
            tokenizer=tokenizer,
            objective=build_objective(length_drop=length_drop),
            **SquadTask().trainer_kwargs(args, tokenizer),
        )
        train_result = trainer.train(resume_from_checkpoint=resume_from)
    train_time = time.time() - start

    # the best checkpoint is loaded by now (load_best_model_at_end): evaluate it, keep its predictions
    dev_metrics = trainer.evaluate(metric_key_prefix="eval")
    pred_file, nbest_file = trainer.evaluation.write_last_predictions(args.output_dir)
    trainer.save_model(args.output_dir)
    trainer.save_state()

    state = trainer.state
    results: Dict[str, Any] = {
        "task": "squad",
        "model_name_or_path": args.model_name_or_path,
        "backbone": backbone,
        "main_metric": SQUAD_METRIC,
        "main_metric_value": dev_metrics["eval_f1"],
        "dev": {"exact_match": dev_metrics["eval_exact_match"], "f1": dev_metrics["eval_f1"]},
        "best_checkpoint": state.best_model_checkpoint,
        "best_metric": state.best_metric,
        "epochs": state.epoch,
        "global_steps": state.global_step,
        "num_train_windows": len(train_ds),
        "num_train_examples": len({f.example_id for f in train_ds}),
        "num_dev_examples": len(dev.examples),
        "num_dev_windows": len(dev.features),
        "predictions_file": pred_file,
        "nbest_predictions_file": nbest_file,
        "train_loss": train_result.training_loss,
        "train_metrics": train_result.metrics,
        "qa_head_from_checkpoint": qa_head,
        **length_drop_settings(length_drop),
        **run_setup.run_record(args, resume_from, start, train_time),
    }
    write_results(args.output_dir, results)
    squad_logger.info(
        "dev EM %.2f F1 %.2f; model, predictions and results in %s",
        results["dev"]["exact_match"],
        results["dev"]["f1"],
        args.output_dir,
    )
    return results
