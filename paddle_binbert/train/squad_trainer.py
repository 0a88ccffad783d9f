"""SQuAD v1.1 pieces of training, shared by teacher fine-tuning and distillation.

* :func:`load_squad_train` / :func:`load_squad_eval`: examples -> windowed features
  (:mod:`paddle_binbert.data.squad`), with ``max_examples`` cuts for quick runs;
* :func:`squad_collator`: pads a batch of :class:`~paddle_binbert.data.squad.SquadFeature` into
  int64 ``paddle.Tensor`` s (``start_positions`` / ``end_positions`` for training windows);
* :class:`SquadEvaluation`: the SQuAD task's evaluation in
  :class:`~paddle_binbert.train.trainer.BinBertTrainer` (its ``evaluation``): start/end logits of
  every dev window (batches of similar length), n-best span decoding
  (:func:`~paddle_binbert.data.squad.postprocess_predictions`) and the official v1.1 exact match
  and F1 (:func:`~paddle_binbert.data.squad.squad_evaluate`, Rajpurkar et al., EMNLP 2016).
  Metrics come back as ``eval_exact_match`` / ``eval_f1``, so ``metric_for_best_model="f1"``
  keeps the best checkpoint by F1.

Training minimises the model's span loss ``(CE(z_start, y_start) + CE(z_end, y_end)) / 2``
(:class:`~paddle_binbert.train.objectives.TaskLoss`), or a distillation / LengthDrop objective.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle

from ..data.sampler import dev_subset
from ..data.squad import (
    SquadExample,
    SquadFeature,
    collate_features,
    is_squad_task,
    load_squad_json,
    parse_squad,
    postprocess_predictions,
    prepare_eval_features,
    prepare_train_features,
    squad_evaluate,
    subset_squad,
    write_predictions,
)

__all__ = [
    "SQUAD_METRIC",
    "SquadEvalData",
    "SquadEvaluation",
    "check_squad_file",
    "is_squad_task",
    "load_squad_eval",
    "load_squad_train",
    "predict_span_logits",
    "squad_collator",
    "subset_squad",
]

logger = logging.getLogger(__name__)

#: metric used to keep the best checkpoint (``eval_f1``)
SQUAD_METRIC = "f1"


def check_squad_file(path: Optional[str], flag: str) -> None:
    """Raise ``FileNotFoundError`` naming ``flag`` when ``path`` is not an existing file."""
    if not path:
        raise FileNotFoundError(f"{flag} is required (a SQuAD v1.1 JSON file)")
    if not os.path.isfile(path):
        what = "is a folder, not a file" if os.path.isdir(path) else "does not exist"
        raise FileNotFoundError(f"{flag} {path} {what} (expected a SQuAD v1.1 JSON file)")


def _read(path: str, max_examples: Optional[int], spread: bool = False) -> Tuple[Dict[str, Any], List[SquadExample]]:
    dataset = load_squad_json(path)
    examples = parse_squad(dataset, source=str(path))
    if not examples:
        raise ValueError(f"{path} holds no question")
    if max_examples is not None:
        if max_examples < 1:
            raise ValueError(f"max_examples must be positive, got {max_examples}")
        examples = dev_subset(examples, max_examples, spread)
        dataset = subset_squad(dataset, {ex.id for ex in examples})
    return dataset, examples


def load_squad_train(
    path: str,
    tokenizer: Any,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    max_examples: Optional[int] = None,
) -> List[SquadFeature]:
    """Training windows of the first ``max_examples`` questions (all by default) of a SQuAD v1.1 file.

    Targets come from each question's first answer; windows that do not hold it point at ``[CLS]``
    (position 0), as in BERT's SQuAD recipe (Devlin et al., NAACL 2019).
    """
    _, examples = _read(path, max_examples)
    examples = [ex for ex in examples if ex.answers]
    if not examples:
        raise ValueError(f"{path}: no question with an answer to train on")
    return prepare_train_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length)


@dataclass
class SquadEvalData:
    """A dev set ready for :class:`SquadEvaluation`.

    Attributes:
        dataset: the decoded SQuAD object (cut to the kept questions) scored by ``squad_evaluate``.
        examples: the kept questions, in file order.
        features: their evaluation windows, in example order.
        path: the file it was read from.
    """

    dataset: Dict[str, Any]
    examples: List[SquadExample]
    features: List[SquadFeature]
    path: str = ""

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> SquadFeature:
        return self.features[index]


def load_squad_eval(
    path: str,
    tokenizer: Any,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    max_examples: Optional[int] = None,
    spread: bool = False,
) -> SquadEvalData:
    """Read a SQuAD v1.1 dev file (the first ``max_examples`` questions, or with ``spread`` that many
    spread evenly over the file: :func:`~paddle_binbert.data.sampler.evenly_spaced`) and build its
    evaluation windows."""
    dataset, examples = _read(path, max_examples, spread)
    features = prepare_eval_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length)
    return SquadEvalData(dataset, examples, features, str(path))


def squad_collator(pad_token_id: int = 0) -> Callable[[Sequence[SquadFeature]], Dict[str, paddle.Tensor]]:
    """``data_collator`` for the Trainer: pads features to the batch's longest (see ``collate_features``)
    and returns int64 tensors ``input_ids``, ``token_type_ids``, ``attention_mask`` (1 = token) and,
    for training windows, ``start_positions`` / ``end_positions``."""

    def collate(features: Sequence[SquadFeature]) -> Dict[str, paddle.Tensor]:
        arrays = collate_features(features, pad_token_id=pad_token_id)
        return {k: paddle.to_tensor(v, dtype="int64") for k, v in arrays.items()}

    return collate


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
