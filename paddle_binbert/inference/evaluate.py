"""Dev-set evaluation of any checkpoint folder: GLUE metrics and SQuAD v1.1 EM / F1.

    from paddle_binbert.inference.evaluate import evaluate_glue, evaluate_squad

    evaluate_glue("runs/sst2_bibert", "SST-2", "glue/SST-2")          # {"acc": 0.87...}
    evaluate_squad("runs/squad_bibert", "squad/dev-v1.1.json")         # {"exact_match": ..., "f1": ...}

The checkpoint is anything
:func:`~paddle_binbert.inference.predictor.load_predictor` loads: a PaddleNLP folder (FP or
simulated quantized student), a Hugging Face BERT folder, a bare ``.pdparams`` file (its folder gives
config and tokenizer), a packed 1-bit folder (run by :mod:`paddle_binbert.engine`) or a static
export (``inference.json`` + ``inference.pdiparams`` from
:func:`paddle_binbert.export.static.export_static`, run by Paddle Inference).

Examples are sorted by length before batching (less padding) and the outputs are put back in file
order before the metrics are computed. Padding does not change a real token's output in any of
the attention variants (padded keys get ``-1e4`` before softmax / ``bool``), with one caveat: the
BinaryBERT 8-bit ``uniform_clip`` activation quantizer scales by the maximum over the whole batch,
so its results depend (slightly) on how examples are grouped.

Command line: ``paddle-binbert eval`` (:func:`paddle_binbert.inference.cli.eval_main`).
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .predictor import Predictor, load_predictor
from .taskflow.task import pad_encodings

__all__ = ["evaluate_glue", "evaluate_squad", "glue_predictions", "length_batches"]

PathLike = Union[str, os.PathLike]


# ------------------------------------------------------------------------------ batching


def length_batches(lengths: Sequence[int], batch_size: int) -> List[List[int]]:
    """Indices grouped into batches of similar length (stable sort by length)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


# ------------------------------------------------------------------------------ GLUE


def glue_predictions(
    checkpoint: PathLike,
    task_name: str,
    data_dir: PathLike,
    max_seq_length: int = 128,
    batch_size: int = 32,
    max_examples: Optional[int] = None,
    split: str = "dev",
    predictor: Optional[Predictor] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Model outputs and labels of a GLUE split, in file order (arguments as :func:`evaluate_glue`).

    Returns:
        ``(logits, labels)``: float64 ``[N, num_labels]`` (``[N, 1]`` for STS-B) and the labels
        (class ids, or STS-B scores).
    """
    from ..data.glue import check_glue_files, get_task_spec, load_glue_features

    spec = get_task_spec(task_name)
    check_glue_files(data_dir, spec.name, [split])
    own = predictor is None
    if own:
        predictor = load_predictor(checkpoint, "text_classification", max_length=max_seq_length)
    num_labels = int(getattr(predictor.config, "num_labels", spec.num_labels))
    if num_labels != spec.num_labels:
        raise ValueError(
            f"{checkpoint} has {num_labels} outputs but {spec.name} needs {spec.num_labels} "
            f"({'regression' if spec.is_regression else 'classes ' + str(list(spec.labels))})"
        )
    length = predictor.cap_length(max_seq_length, warn=not own)
    features = load_glue_features(data_dir, spec.name, split, predictor.tokenizer, length, max_examples)
    if not features:
        raise ValueError(f"{spec.name} {split} split in {data_dir} holds no examples")
    pad_id = int(predictor.tokenizer.pad_token_id)
    logits = np.zeros((len(features), num_labels), dtype=np.float64)
    for batch in length_batches([len(f["input_ids"]) for f in features], batch_size):
        arrays = pad_encodings([features[i] for i in batch], pad_id)
        outputs = predictor(arrays["input_ids"], arrays["token_type_ids"], arrays["attention_mask"])
        logits[batch] = np.asarray(outputs, dtype=np.float64).reshape(len(batch), num_labels)
    return logits, np.asarray([f["labels"] for f in features])


def evaluate_glue(
    checkpoint: PathLike,
    task_name: str,
    data_dir: PathLike,
    max_seq_length: int = 128,
    batch_size: int = 32,
    max_examples: Optional[int] = None,
    split: str = "dev",
    predictor: Optional[Predictor] = None,
) -> Dict[str, float]:
    """GLUE dev metrics of a checkpoint (see :mod:`paddle_binbert.data.metrics` for the keys per task).

    Args:
        checkpoint: any folder :func:`load_predictor` accepts (FP, simulated quantized, packed, static).
        task_name: GLUE task, any spelling (``SST-2``, ``sst2``, ``mnli`` ...).
        data_dir: the task's folder with the official TSV files.
        max_seq_length: inputs are truncated to this many tokens (capped at the model's limit).
        batch_size: examples per forward pass (batches are formed by length).
        max_examples: only the first N examples of the file.
        split: ``dev`` (MNLI: matched), ``dev_matched``, ``dev_mismatched``, ``train`` ...
        predictor: an already loaded :class:`Predictor` (``checkpoint`` then only names it in errors).

    Returns:
        The task's metrics, plain floats (accuracy in [0, 1]).

    Raises:
        ValueError: unknown task / split, or a classifier whose number of outputs does not match the task.
        FileNotFoundError: missing data files, checkpoint or tokenizer.
    """
    from ..data.glue import get_task_spec
    from ..data.metrics import compute_glue_metrics

    spec = get_task_spec(task_name)
    logits, labels = glue_predictions(
        checkpoint, spec.name, data_dir, max_seq_length, batch_size, max_examples, split, predictor
    )
    return compute_glue_metrics(spec.name, logits, labels)


# ------------------------------------------------------------------------------ SQuAD


def evaluate_squad(
    checkpoint: PathLike,
    data_file: PathLike,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    batch_size: int = 32,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    max_examples: Optional[int] = None,
    output_dir: Optional[PathLike] = None,
    predictor: Optional[Predictor] = None,
) -> Dict[str, float]:
    """SQuAD v1.1 exact match and F1 (percent) of a QA checkpoint on a dev file.

    Windows are built with :func:`~paddle_binbert.data.squad.prepare_eval_features`, run in batches
    of similar length, mapped back to answers with
    :func:`~paddle_binbert.data.squad.postprocess_predictions` and scored with
    :func:`~paddle_binbert.data.squad.squad_evaluate` (over the first ``max_examples`` questions when
    given). ``output_dir`` also receives ``predictions.json`` and ``nbest_predictions.json``.

    Raises:
        FileNotFoundError: missing data file, checkpoint or tokenizer.
        SquadFormatError: the data file is not UTF-8 SQuAD v1.1 JSON (a ValueError naming the file, and the
            article / paragraph / question of a missing field).
        ValueError: the checkpoint is not a QA model, or bad window settings.
    """
    from ..data.squad import (
        collate_features,
        load_squad_json,
        parse_squad,
        postprocess_predictions,
        prepare_eval_features,
        squad_evaluate,
        subset_squad,
        write_predictions,
    )

    data_file = os.fspath(data_file)
    if not os.path.isfile(data_file):
        raise FileNotFoundError(f"SQuAD file {data_file} does not exist")
    dataset = load_squad_json(data_file)
    examples = parse_squad(dataset, source=data_file)
    if max_examples is not None:
        if max_examples < 1:
            raise ValueError(f"max_examples must be positive, got {max_examples}")
        examples = examples[:max_examples]
        dataset = subset_squad(dataset, {ex.id for ex in examples})
    own = predictor is None
    if own:
        predictor = load_predictor(checkpoint, "question_answering", max_length=max_seq_length)
    length = predictor.cap_length(max_seq_length, warn=not own)
    features = prepare_eval_features(
        examples, predictor.tokenizer, max_seq_length=length, doc_stride=doc_stride, max_query_length=max_query_length
    )
    pad_id = int(predictor.tokenizer.pad_token_id)
    start_rows: List[Optional[np.ndarray]] = [None] * len(features)
    end_rows: List[Optional[np.ndarray]] = [None] * len(features)
    for batch in length_batches([len(f.input_ids) for f in features], batch_size):
        arrays = collate_features([features[i] for i in batch], pad_token_id=pad_id)
        starts, ends = predictor(arrays["input_ids"], arrays["token_type_ids"], arrays["attention_mask"])
        starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
        for row, index in enumerate(batch):
            n = len(features[index].input_ids)
            start_rows[index], end_rows[index] = starts[row, :n], ends[row, :n]
    predictions, nbest = postprocess_predictions(
        examples, features, start_rows, end_rows, n_best_size=n_best_size, max_answer_length=max_answer_length
    )
    if output_dir is not None:
        write_predictions(predictions, nbest, output_dir)
    metrics = squad_evaluate(dataset, predictions, source=data_file)
    return {"exact_match": float(metrics["exact_match"]), "f1": float(metrics["f1"])}
