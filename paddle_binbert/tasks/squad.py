"""The SQuAD v1.1 task: ``BertForQuestionAnswering`` models, windows, span decoding and EM / F1.

* :class:`SquadEvaluation`: the evaluation of :class:`~paddle_binbert.train.trainer.BinBertTrainer`
  on SQuAD (fine-tuning and distillation): start/end logits of every dev window
  (:func:`predict_span_logits`, batches of similar length), n-best span decoding
  (:func:`~paddle_binbert.data.squad.postprocess_predictions`) and the official v1.1 exact match
  and F1 (:func:`~paddle_binbert.data.squad.squad_evaluate`, Rajpurkar et al., EMNLP 2016), as
  ``eval_exact_match`` / ``eval_f1``: the best checkpoint is kept by F1 (:data:`SQUAD_METRIC`);
* :class:`SquadTask`: SQuAD's part of a distillation run. The prediction terms act on the start and
  end logits: ``SCE_span = (SCE(z_s^start, z_t^start; T) + SCE(z_s^end, z_t^end; T)) / 2`` (padding
  masked; :func:`~paddle_binbert.distill.losses.span_soft_cross_entropy`), the hard-label term is
  BERT's span loss ``(CE(z_start, y_start) + CE(z_end, y_end)) / 2``; the intermediate terms are
  those of the method's recipe, unchanged;
* the flag checks and data loading shared by fine-tuning and distillation (:func:`check_squad_flags`,
  :func:`load_squad_sets`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle

from ..data.squad import (
    SquadFeature,
    collate_features,
    is_squad_task,
    postprocess_predictions,
    squad_evaluate,
    write_predictions,
)
from ..data.squad.datasets import SquadEvalData, check_squad_file
from ..train.arguments import FlagError, RunArguments, SquadDistillArguments, SquadRunArguments
from .base import DistillTask, first_batches, load_head_model, tokenizer_dir

__all__ = [
    "SQUAD_FILES",
    "SQUAD_METRIC",
    "SquadEvaluation",
    "SquadTask",
    "check_squad_flags",
    "check_squad_windows",
    "load_qa",
    "load_squad_sets",
    "predict_span_logits",
]

logger = logging.getLogger("squad_distill")

#: file names looked up in ``--data_dir`` when ``--train_file`` / ``--predict_file`` are not given
SQUAD_FILES = {"train_file": "train-v1.1.json", "predict_file": "dev-v1.1.json"}
#: metric used to keep the best checkpoint (``eval_f1``)
SQUAD_METRIC = "f1"


def predict_span_logits(
    model: paddle.nn.Layer,
    features: Sequence[SquadFeature],
    batch_size: int = 32,
    pad_token_id: int = 0,
    progress: bool = False,
) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Start and end logits of every window (one row per feature, cut to its length), no gradients.

    Windows are batched by similar length (stable sort), so padding is small; rows come back in
    feature order. The model is put in eval mode and its previous mode restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(features)), key=lambda i: len(features[i].input_ids))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    starts: List[Optional[np.ndarray]] = [None] * len(features)
    ends: List[Optional[np.ndarray]] = [None] * len(features)
    was_training = model.training
    model.eval()
    iterator: Any = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc="SQuAD eval", unit="batch", leave=False)
    try:
        with paddle.no_grad():
            for batch in iterator:
                arrays = collate_features([features[i] for i in batch], pad_token_id=pad_token_id)
                out = model(
                    paddle.to_tensor(arrays["input_ids"]),
                    token_type_ids=paddle.to_tensor(arrays["token_type_ids"]),
                    attention_mask=paddle.to_tensor(arrays["attention_mask"]),
                    return_dict=True,
                )
                start, end = out.start_logits.numpy(), out.end_logits.numpy()
                for row, index in enumerate(batch):
                    n = len(features[index].input_ids)
                    starts[index], ends[index] = start[row, :n], end[row, :n]
    finally:
        if was_training:
            model.train()
    return starts, ends  # type: ignore[return-value]


class SquadEvaluation:
    """SQuAD v1.1 exact match / F1 of a trainer's current ``model`` (``BinBertTrainer(evaluation=...)``).

    The dev set (the trainer's ``eval_dataset`` or the argument) must be a :class:`SquadEvalData`.
    Each call decodes answers with ``n_best_size`` / ``max_answer_length`` and scores them with the
    official v1.1 rules: EM = max over gold answers of [normalize(pred) == normalize(gold)], F1 = max
    over gold answers of the token-level F1 (Rajpurkar et al., 2016), averaged over questions, in
    percent. The predictions and n-best lists of the last call stay in ``last_predictions`` /
    ``last_nbest`` (see :meth:`write_last_predictions`). Metrics are logged and passed to the
    trainer's callbacks as PaddleNLP's ``evaluate`` does, so checkpoint selection, logging and early
    stopping work unchanged.

    Args:
        n_best_size: start/end candidates per window and answers kept per question.
        max_answer_length: longest answer, in tokens.
    """

    def __init__(self, n_best_size: int = 20, max_answer_length: int = 30) -> None:
        self.n_best_size, self.max_answer_length = n_best_size, max_answer_length
        self.last_predictions: Optional[Dict[str, str]] = None
        self.last_nbest: Optional[Dict[str, Any]] = None

    def evaluate(
        self, trainer: Any, eval_dataset: Optional[SquadEvalData] = None, metric_key_prefix: str = "eval"
    ) -> Dict[str, float]:
        """Exact match and F1 (percent) of ``trainer.model`` under ``<prefix>_exact_match`` /
        ``<prefix>_f1``, plus runtime."""
        data = eval_dataset if eval_dataset is not None else trainer.eval_dataset
        if not isinstance(data, SquadEvalData):
            raise TypeError(f"SQuAD evaluation needs a SquadEvalData, got {type(data).__name__}")
        start = time.time()
        args = trainer.args
        pad_id = int(getattr(trainer.tokenizer, "pad_token_id", 0) or 0)
        starts, ends = predict_span_logits(
            trainer.model, data.features, args.per_device_eval_batch_size, pad_id, progress=not args.disable_tqdm
        )
        predictions, nbest = postprocess_predictions(
            data.examples, data.features, starts, ends, self.n_best_size, self.max_answer_length
        )
        scores = squad_evaluate(data.dataset, predictions)
        runtime = time.time() - start
        metrics = {
            f"{metric_key_prefix}_exact_match": float(scores["exact_match"]),
            f"{metric_key_prefix}_f1": float(scores["f1"]),
            f"{metric_key_prefix}_runtime": round(runtime, 4),
            f"{metric_key_prefix}_samples_per_second": round(len(data.features) / max(runtime, 1e-9), 3),
        }
        self.last_predictions, self.last_nbest = predictions, nbest
        trainer.log(metrics)
        trainer.control = trainer.callback_handler.on_evaluate(args, trainer.state, trainer.control, metrics)
        return metrics

    def write_last_predictions(self, output_dir: str) -> Tuple[str, str]:
        """Write ``predictions.json`` and ``nbest_predictions.json`` of the last :meth:`evaluate` call."""
        if self.last_predictions is None or self.last_nbest is None:
            raise RuntimeError("no SQuAD predictions yet: call evaluate() first")
        paths = write_predictions(self.last_predictions, self.last_nbest, output_dir)
        return str(paths[0]), str(paths[1])


def check_squad_windows(args: Any) -> None:
    """:class:`~paddle_binbert.train.arguments.FlagError` unless ``--doc_stride``, ``--n_best_size``,
    ``--max_answer_length`` and ``--max_query_length`` are positive and a ``--max_seq_length`` window
    has room for the context (``args``: a :class:`~paddle_binbert.train.arguments.SquadRunArguments`
    or any settings object with those fields)."""
    from ..train.run_setup import check_positive

    check_positive(args, ("doc_stride", "n_best_size", "max_answer_length", "max_query_length"))
    if args.max_seq_length < args.max_query_length + 4:
        raise FlagError(
            f"--max_seq_length {args.max_seq_length} leaves no room for the context: it must be at least "
            f"--max_query_length + 4 = {args.max_query_length + 4}"
        )


def check_squad_flags(args: SquadRunArguments) -> None:
    """The SQuAD files must be readable JSON files and the windows valid (:func:`check_squad_windows`);
    :class:`~paddle_binbert.train.arguments.FlagError` on a problem."""
    for flag in ("train_file", "predict_file"):
        try:
            check_squad_file(getattr(args, flag), f"--{flag}")
        except FileNotFoundError as err:
            raise FlagError(str(err)) from None
    check_squad_windows(args)


def load_squad_sets(
    args: SquadRunArguments,
    tokenizer: Any,
    max_train_examples: Optional[int] = None,
    max_eval_examples: Optional[int] = None,
) -> Tuple[Any, Any]:
    """The training windows of ``--train_file`` and the dev set of ``--predict_file`` (their first
    ``--max_train_examples`` / ``--max_eval_examples`` questions, or the numbers given here) cut with
    the window flags; shared by fine-tuning and distillation."""
    from ..data.squad.datasets import load_squad_eval, load_squad_train

    windows = dict(
        max_seq_length=args.max_seq_length, doc_stride=args.doc_stride, max_query_length=args.max_query_length
    )
    train_limit = args.max_train_examples if max_train_examples is None else max_train_examples
    eval_limit = args.max_eval_examples if max_eval_examples is None else max_eval_examples
    train = load_squad_train(args.train_file, tokenizer, max_examples=train_limit, **windows)
    dev = load_squad_eval(args.predict_file, tokenizer, max_examples=eval_limit, **windows)
    return train, dev


def _check_qa_checkpoint(path: str, flag: str) -> None:
    """Refuse a checkpoint folder whose config names a non-QA head (it would load a wrong classifier)."""
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        return
    with open(config_file, encoding="utf-8") as fh:
        archs = json.load(fh).get("architectures") or []
    if archs and "BertForQuestionAnswering" not in archs and "BertModel" not in archs:
        raise ValueError(
            f"{flag} {path} holds a {archs[0]}, not a BertForQuestionAnswering: fine-tune a SQuAD "
            "teacher first (examples/run_squad.py)"
        )


def load_qa(path: str, model_config: Optional[str] = None, flag: str = "--teacher_path") -> Any:
    """A ``BertForQuestionAnswering`` checkpoint (:func:`~paddle_binbert.tasks.base.load_head_model`);
    a folder whose config names another head is refused (``flag`` names it in the error)."""
    from paddlenlp.transformers import BertForQuestionAnswering

    if os.path.isdir(path):
        _check_qa_checkpoint(path, flag)
    return load_head_model(path, BertForQuestionAnswering, model_config)


class SquadTask(DistillTask):
    """SQuAD v1.1 distillation (``examples/squad_distill.py``, ``task_distill.py --task_name squad``)."""

    script = "squad_distill"
    arguments = SquadDistillArguments

    def check_flags(self, args: SquadDistillArguments) -> None:
        """``--task_name`` must be SQuAD (set to ``squad``), no ``--aug_train``; the files default to
        ``--data_dir``'s :data:`SQUAD_FILES`."""
        if not is_squad_task(args.task_name):
            raise FlagError(f"--task_name {args.task_name!r} is not SQuAD; use task_distill.py for GLUE tasks")
        args.task_name = "squad"
        if args.aug_train:
            raise FlagError("--aug_train is not supported for SQuAD")
        for flag, name in SQUAD_FILES.items():
            if getattr(args, flag) is None and args.data_dir is not None:
                setattr(args, flag, os.path.join(args.data_dir, name))
        if args.train_file is None or args.predict_file is None:
            raise FlagError(
                "give --train_file and --predict_file (or --data_dir holding "
                f"{SQUAD_FILES['train_file']} and {SQUAD_FILES['predict_file']})"
            )

    def defaults_key(self, args: SquadDistillArguments) -> str:
        return "squad"

    def check_more_flags(self, args: SquadDistillArguments) -> None:
        """The student must exist (it is loaded as a QA model), the SQuAD files and windows valid."""
        if not os.path.exists(args.student_model_name_or_path):
            raise FlagError(f"--student_model_name_or_path {args.student_model_name_or_path} does not exist")
        check_squad_flags(args)

    def metric(self, args: SquadDistillArguments) -> str:
        return SQUAD_METRIC

    def load_model(self, path: str, model_config: Optional[str], flag: str) -> Any:
        return load_qa(path, model_config, flag)

    def load_data(self, args: SquadDistillArguments, tokenizer: Any) -> Tuple[Any, Any]:
        from ..data.squad import SquadFormatError
        from ..train.run_setup import require_examples

        try:
            train_ds, dev = load_squad_sets(args, tokenizer)
        except SquadFormatError as err:
            raise SquadFormatError(f"bad SQuAD file: {err}") from err
        require_examples(train_ds, args.train_file, "training")
        require_examples(dev.features, args.predict_file, "dev")
        logger.info(
            "SQuAD: %d training windows; dev %d questions, %d windows",
            len(train_ds),
            len(dev.examples),
            len(dev.features),
        )
        return train_ds, dev

    def trainer_kwargs(self, args: RunArguments, tokenizer: Any) -> Dict[str, Any]:
        """The window collator and the SQuAD v1.1 EM / F1 evaluation (:class:`SquadEvaluation`) with
        the run's ``--n_best_size`` / ``--max_answer_length``."""
        from ..data.squad.datasets import squad_collator

        return dict(
            data_collator=squad_collator(int(tokenizer.pad_token_id)),
            evaluation=SquadEvaluation(args.n_best_size, args.max_answer_length),
        )

    def log_teacher(self, metrics: Dict[str, float]) -> None:
        logger.info("teacher dev: EM %.2f F1 %.2f", metrics["teacher_exact_match"], metrics["teacher_f1"])

    def metrics(self, metrics: Dict[str, float], prefix: str) -> Dict[str, float]:
        return {"exact_match": metrics[f"{prefix}exact_match"], "f1": metrics[f"{prefix}f1"]}

    def results(
        self, args: SquadDistillArguments, trainer: Any, train_ds: Any, dev: Any, teacher: Any, loss_config: Any
    ) -> Dict[str, Any]:
        """Writes the last evaluation's ``predictions.json`` / ``nbest_predictions.json``."""
        from ..accounting import flops_g

        pred_file, nbest_file = trainer.evaluation.write_last_predictions(args.output_dir)
        return {
            "teacher_gflops": flops_g(teacher.config, (32, 32, 32), args.max_seq_length),
            "temperature": loss_config.temperature,
            "best_metric": trainer.state.best_metric,
            "num_train_windows": len(train_ds),
            "num_dev_examples": len(dev.examples),
            "num_dev_windows": len(dev.features),
            "predictions_file": pred_file,
            "nbest_predictions_file": nbest_file,
        }

    def summary_line(self, results: Dict[str, Any], bits: str) -> str:
        teacher, student = results["teacher"], results["student"]
        return (
            f"[SQuAD] teacher EM/F1 {teacher['exact_match']:.2f}/{teacher['f1']:.2f} | student "
            f"({results['method']} {bits}) EM/F1 {student['exact_match']:.2f}/{student['f1']:.2f}"
            f" | student size {results['student_size_mib']:.2f} MiB (teacher {results['teacher_size_mib']:.2f} MiB)"
        )

    def importance_batches(self, args: SquadDistillArguments) -> List[Dict[str, Any]]:
        """The first ``--half_width_batches`` batches of ``--batch_size`` training windows (with their
        start / end positions), in file order."""
        from paddlenlp.transformers import BertTokenizer

        from ..data.squad.datasets import squad_collator

        tokenizer = BertTokenizer.from_pretrained(tokenizer_dir(args))
        wanted = args.half_width_batches * args.batch_size  # questions; each gives at least one window
        limit = wanted if args.max_train_examples is None else min(wanted, args.max_train_examples)
        # load_squad_sets cuts both sets with the run's window flags; one dev question is enough here
        windows, _ = load_squad_sets(args, tokenizer, max_train_examples=limit, max_eval_examples=1)
        collate = squad_collator(int(tokenizer.pad_token_id))
        return first_batches(windows, collate, args.batch_size, args.half_width_batches)
