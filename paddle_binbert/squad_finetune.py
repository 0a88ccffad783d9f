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

from .length_adaptive.cli import add_length_drop_args, check_length_drop_args, length_drop_config, length_drop_settings
from .squad_trainer import check_squad_file

__all__ = [
    "build_parser",
    "validate_args",
    "add_squad_arguments",
    "validate_squad_arguments",
    "checkpoint_has_qa_head",
    "main",
]

logger = logging.getLogger("run_squad")


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


def validate_squad_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check the SQuAD files and window sizes (``parser.error`` on a problem)."""
    for flag in ("train_file", "predict_file"):
        try:
            check_squad_file(getattr(args, flag), f"--{flag}")
        except FileNotFoundError as err:
            parser.error(str(err))
    for name in ("doc_stride", "n_best_size", "max_answer_length"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.max_query_length < 1:
        parser.error(f"--max_query_length must be positive, got {args.max_query_length}")
    if args.max_seq_length < args.max_query_length + 4:
        parser.error(
            f"--max_seq_length {args.max_seq_length} leaves no room for the context: it must be at least "
            f"--max_query_length + 4 = {args.max_query_length + 4}"
        )


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the SQuAD teacher fine-tuning script (every flag documented)."""
    p = argparse.ArgumentParser(
        prog="run_squad.py",
        description="Fine-tune a full-precision BERT teacher on SQuAD v1.1 (PaddleNLP Trainer, best dev "
        "checkpoint by F1, official exact match / F1).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--model_name_or_path",
        default="minilm",
        help="backbone: 'minilm' (bundled all-MiniLM-L6-v2, converted once), a PaddleNLP checkpoint folder, "
        "a Hugging Face BERT folder (converted once) or a PaddleNLP model name such as bert-base-uncased",
    )
    p.add_argument(
        "--output_dir", required=True, help="where checkpoints, the final model, predictions and results.json go"
    )
    p.add_argument("--max_seq_length", type=int, default=384, help="window length in tokens, special tokens included")
    add_squad_arguments(p)
    p.add_argument("--batch_size", type=int, default=16, help="training and evaluation batch size (windows)")
    p.add_argument("--learning_rate", type=float, default=5e-5, help="peak learning rate of AdamW")
    p.add_argument("--num_train_epochs", type=float, default=2.0, help="number of training epochs")
    p.add_argument("--weight_decay", type=float, default=0.01, help="AdamW weight decay (not on bias/LayerNorm)")
    p.add_argument("--warmup_ratio", type=float, default=0.1, help="fraction of steps of linear warmup")
    p.add_argument("--seed", type=int, default=42, help="random seed (initialisation, shuffling, dropout)")
    p.add_argument("--logging_steps", type=int, default=50, help="log the training loss every N steps")
    p.add_argument(
        "--eval_steps",
        type=int,
        default=None,
        help="evaluate on --predict_file and save a checkpoint every N steps; unset: once per epoch",
    )
    p.add_argument(
        "--save_steps",
        type=int,
        default=None,
        help="checkpoint every N steps, a multiple of --eval_steps; unset: same as --eval_steps",
    )
    p.add_argument("--max_steps", type=int, default=-1, help="stop after N optimizer steps (-1: use the epochs)")
    p.add_argument(
        "--max_train_examples", type=int, default=None, help="use only the first N training questions (quick runs)"
    )
    p.add_argument(
        "--max_eval_examples", type=int, default=None, help="use only the first N dev questions (quick runs)"
    )
    add_length_drop_args(
        p,
        note="the full model's loss is the span loss (mean start/end cross-entropy); the sub-models restore "
        "dropped tokens at the last layer (Drop-and-Restore) and match the full model's start/end distributions",
    )
    p.add_argument("--device", default="cpu", help="paddle device: cpu, gpu, gpu:0, ...")
    p.add_argument("--resume", action="store_true", help="resume from the last checkpoint-N in --output_dir")
    p.add_argument(
        "--overwrite_output_dir",
        action="store_true",
        help="delete previous checkpoints and results in --output_dir instead of refusing to start",
    )
    return p


def validate_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Cheap checks before loading anything heavy; errors exit through ``parser.error``."""
    for name in (
        "max_seq_length",
        "batch_size",
        "logging_steps",
        "eval_steps",
        "save_steps",
        "max_train_examples",
        "max_eval_examples",
    ):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be positive, got {value}")
    validate_squad_arguments(parser, args)
    if args.learning_rate <= 0:
        parser.error("--learning_rate must be positive")
    if args.max_steps == 0 or args.max_steps < -1:
        parser.error("--max_steps must be positive or -1")
    if args.max_steps == -1 and args.num_train_epochs <= 0:
        parser.error("--num_train_epochs must be positive")
    if args.save_steps is not None and (args.eval_steps is None or args.save_steps % args.eval_steps):
        parser.error("--save_steps must be a multiple of --eval_steps")
    if not 0.0 <= args.warmup_ratio <= 1.0:
        parser.error("--warmup_ratio must be in [0, 1]")
    check_length_drop_args(parser, args)

    from .trainer import check_output_dir

    error = check_output_dir(args.output_dir, args.resume, args.overwrite_output_dir)
    if error:
        parser.error(error)


def load_squad_data(parser: argparse.ArgumentParser, args: argparse.Namespace, tokenizer: Any, max_positions: int):
    """Training windows and the dev set; file-format problems exit through ``parser.error``."""
    from .data.squad import SquadFormatError
    from .squad_trainer import load_squad_eval, load_squad_train

    if args.max_seq_length > max_positions:
        parser.error(
            f"--max_seq_length {args.max_seq_length} exceeds the model's max_position_embeddings {max_positions}"
        )
    windows = dict(
        max_seq_length=args.max_seq_length, doc_stride=args.doc_stride, max_query_length=args.max_query_length
    )
    try:
        train = load_squad_train(args.train_file, tokenizer, max_examples=args.max_train_examples, **windows)
        dev = load_squad_eval(args.predict_file, tokenizer, max_examples=args.max_eval_examples, **windows)
    except (SquadFormatError, ValueError, OSError) as err:
        parser.error(str(err))
    return train, dev


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
    """Run the fine-tuning; returns the content written to ``results.json``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    validate_args(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # heavy imports only after validation
    import paddle
    from paddlenlp.trainer import set_seed
    from paddlenlp.transformers import BertConfig, BertForQuestionAnswering, BertTokenizer

    from .convert import resolve_backbone
    from .squad_trainer import SQUAD_METRIC, LengthAdaptiveSquadTrainer, SquadTrainer, squad_collator
    from .trainer import clear_previous_run, get_last_checkpoint, make_training_args, write_results

    start = time.time()
    if args.overwrite_output_dir:
        clear_previous_run(args.output_dir)
    resume_from = get_last_checkpoint(args.output_dir) if args.resume else None
    if args.resume and resume_from is None:
        logger.info("--resume: no checkpoint in %s, starting from scratch", args.output_dir)

    set_seed(args.seed)
    backbone = resolve_backbone(args.model_name_or_path)
    logger.info("backbone %s -> %s", args.model_name_or_path, backbone)
    tokenizer = BertTokenizer.from_pretrained(backbone)
    max_positions = int(BertConfig.from_pretrained(backbone).max_position_embeddings)
    train_ds, dev = load_squad_data(parser, args, tokenizer, max_positions)
    logger.info(
        "SQuAD: %d training windows; dev %d questions, %d windows", len(train_ds), len(dev.examples), len(dev.features)
    )

    training_args = make_training_args(
        output_dir=args.output_dir,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        num_train_epochs=args.num_train_epochs,
        weight_decay=args.weight_decay,
        seed=args.seed,
        logging_steps=args.logging_steps,
        save_steps=args.save_steps,
        eval_steps=args.eval_steps,
        max_steps=args.max_steps,
        device=args.device,
        warmup_ratio=args.warmup_ratio,
        metric_for_best_model=SQUAD_METRIC,
    )
    length_drop = length_drop_config(args)
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
        "resumed_from": resume_from,
        "wall_time_seconds": time.time() - start,
        "train_wall_time_seconds": train_time,
        "args": vars(args),
    }
    write_results(args.output_dir, results)
    logger.info(
        "dev EM %.2f F1 %.2f; model, predictions and results in %s",
        results["dev"]["exact_match"],
        results["dev"]["f1"],
        args.output_dir,
    )
    return results
