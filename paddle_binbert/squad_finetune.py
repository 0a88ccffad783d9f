"""Fine-tune a full-precision ``BertForQuestionAnswering`` teacher on SQuAD v1.1 (``examples/run_squad.py``).

    python examples/run_squad.py --train_file squad/mini_train-v1.1.json \\
        --predict_file squad/mini_dev-v1.1.json --output_dir runs/squad_teacher

BERT's SQuAD recipe (Devlin et al., NAACL 2019): every question becomes ``[CLS] question [SEP]
context-window [SEP]`` windows (``--max_seq_length`` / ``--doc_stride`` / ``--max_query_length``);
a linear head gives start and end logits per token and training minimises
``(CE(z_start, y_start) + CE(z_end, y_end)) / 2``. Evaluation decodes the best span of every
question over all its windows (``--n_best_size``, ``--max_answer_length``) and scores it with the
official v1.1 exact match and F1. The best dev checkpoint by F1 is reloaded at the end and saved to
``--output_dir`` (config.json, model_state.pdparams, tokenizer files) with ``predictions.json``,
``nbest_predictions.json`` and ``results.json``.

``--model_name_or_path`` may also be an already fine-tuned ``BertForQuestionAnswering`` checkpoint
folder (e.g. a previous run's ``--output_dir``): its QA head is loaded with the encoder, so training
continues from it. With ``--length_adaptive`` the model is trained with LengthDrop (Dynamic-TinyBERT):
per step the full model (the span loss above), the smallest and ``--num_sandwich`` random
token-budget sub-models (Drop-and-Restore, trained towards the full model's start/end
distributions); search its budgets afterwards with ``paddle-binbert search-length``.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any, Dict, List, Optional

from . import run_setup
from .length_adaptive.cli import add_length_drop_args, length_drop_settings
from .tasks.squad import check_squad_flags, load_squad_sets
from .train.arguments import FlagError, SquadFinetuneArguments
from .train.flags import add_backbone_flag, add_run_flags, add_squad_arguments, add_training_flags, run_command

__all__ = [
    "build_parser",
    "checkpoint_has_qa_head",
    "load_squad_data",
    "main",
    "run",
    "validate_args",
]

logger = logging.getLogger("run_squad")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the SQuAD teacher fine-tuning script (every flag documented)."""
    p = argparse.ArgumentParser(
        prog="run_squad.py",
        description="Fine-tune a full-precision BERT teacher on SQuAD v1.1 (PaddleNLP Trainer, best dev "
        "checkpoint by F1, official exact match / F1).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_backbone_flag(p)
    p.add_argument(
        "--output_dir", required=True, help="where checkpoints, the final model, predictions and results.json go"
    )
    p.add_argument("--max_seq_length", type=int, default=384, help="window length in tokens, special tokens included")
    add_squad_arguments(p)
    add_training_flags(
        p,
        batch_size=16,
        learning_rate=5e-5,
        num_train_epochs=2.0,
        batch_help="training and evaluation batch size (windows)",
        eval_on="--predict_file",
        examples="questions",
    )
    add_length_drop_args(
        p,
        note="the full model's loss is the span loss (mean start/end cross-entropy); the sub-models restore "
        "dropped tokens at the last layer (Drop-and-Restore) and match the full model's start/end distributions",
    )
    add_run_flags(p)
    return p


def validate_args(args: SquadFinetuneArguments) -> None:
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
    from .data.squad import SquadFormatError

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


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Entry point of ``examples/run_squad.py``: parse, validate, :func:`run`; a bad flag or data
    file exits through ``parser.error``. Returns the content written to ``results.json``."""
    return run_command(build_parser(), argv, SquadFinetuneArguments, validate_args, run)


def run(args: SquadFinetuneArguments) -> Dict[str, Any]:
    """Fine-tune (validated ``args``, :func:`validate_args`); returns the content written to
    ``results.json``. A bad data file or a resumed run of another definition raises ``FlagError``."""
    # heavy imports only after validation
    import paddle
    from paddlenlp.transformers import BertConfig, BertForQuestionAnswering, BertTokenizer

    from .convert import resolve_backbone
    from .squad_trainer import SQUAD_METRIC, LengthAdaptiveSquadTrainer, SquadTrainer, squad_collator
    from .trainer import write_results

    start = time.time()
    backbone = resolve_backbone(args.model_name_or_path)
    logger.info("backbone %s -> %s", args.model_name_or_path, backbone)
    tokenizer = BertTokenizer.from_pretrained(backbone)
    max_positions = int(BertConfig.from_pretrained(backbone).max_position_embeddings)
    train_ds, dev = load_squad_data(args, tokenizer, max_positions)
    logger.info(
        "SQuAD: %d training windows; dev %d questions, %d windows", len(train_ds), len(dev.examples), len(dev.features)
    )
    # only now (the data and the backbone are fine): delete a previous run (--overwrite_output_dir),
    # find the checkpoint to resume, seed
    resume_from = run_setup.prepare_run(args, logger)
    length_drop = args.length_drop_config()
    try:  # a resumed run must be the run it continues
        identity = {"script": "run_squad", "task": "squad", **length_drop_settings(length_drop)}
        run_setup.check_run_identity(args.output_dir, identity, resume_from, logger)
    except ValueError as err:
        raise FlagError(str(err)) from err

    training_args = run_setup.training_arguments(args, SQUAD_METRIC)
    qa_head = checkpoint_has_qa_head(backbone)
    if qa_head:
        logger.info("%s is a BertForQuestionAnswering checkpoint: its QA head is kept", backbone)
    trainer_kwargs: Dict[str, Any] = {}
    trainer_cls: Any = SquadTrainer
    if length_drop is not None:
        trainer_cls = LengthAdaptiveSquadTrainer
        trainer_kwargs["length_drop"] = length_drop
        logger.info("LengthDrop training: %s", length_drop)
    # fresh parameter-name namespace so that --resume finds the optimizer states (see run_glue.py)
    with paddle.utils.unique_name.guard():
        # use_cache: the MiniLM config enables BERT's key/value cache, useless here
        model = BertForQuestionAnswering.from_pretrained(backbone, use_cache=False)
        trainer = trainer_cls(
            model=model,
            args=training_args,
            train_dataset=train_ds,
            eval_dataset=dev,
            tokenizer=tokenizer,
            data_collator=squad_collator(int(tokenizer.pad_token_id)),
            n_best_size=args.n_best_size,
            max_answer_length=args.max_answer_length,
            **trainer_kwargs,
        )
        train_result = trainer.train(resume_from_checkpoint=resume_from)
    train_time = time.time() - start

    # the best checkpoint is loaded by now (load_best_model_at_end): evaluate it, keep its predictions
    dev_metrics = trainer.evaluate(metric_key_prefix="eval")
    pred_file, nbest_file = trainer.write_last_predictions(args.output_dir)
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
    logger.info(
        "dev EM %.2f F1 %.2f; model, predictions and results in %s",
        results["dev"]["exact_match"],
        results["dev"]["f1"],
        args.output_dir,
    )
    return results
