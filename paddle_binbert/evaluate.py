"""Dev-set evaluation of any checkpoint folder: GLUE metrics and SQuAD v1.1 EM / F1.

    from paddle_binbert.evaluate import evaluate_glue, evaluate_squad

    evaluate_glue("runs/sst2_bibert", "SST-2", "glue/SST-2")          # {"acc": 0.87...}
    evaluate_squad("runs/squad_bibert", "squad/dev-v1.1.json")         # {"exact_match": ..., "f1": ...}

The checkpoint may be a PaddleNLP folder (FP or simulated quantized student), a Hugging Face
BERT folder, a bare ``.pdparams`` file (its folder gives config and tokenizer), a packed 1-bit
folder (run by :mod:`paddle_binbert.engine`) or a static export (``inference.json`` +
``inference.pdiparams`` from :func:`paddle_binbert.export.static.export_static`, run by Paddle
Inference). :func:`load_predictor` turns any of them into one ``forward(input_ids, token_type_ids,
attention_mask) -> numpy`` function; loading goes through :class:`paddle_binbert.taskflow.Taskflow`
(hence :func:`paddle_binbert.checkpoints.load_checkpoint` and ``paddle_binbert.engine.load``).

Examples are sorted by length before batching (less padding) and the outputs are put back in file
order before the metrics are computed. Padding does not change a real token's output in any of
the attention variants (padded keys get ``-1e4`` before softmax / ``bool``), with one caveat: the
BinaryBERT 8-bit ``uniform_clip`` activation quantizer scales by the maximum over the whole batch,
so its results depend (slightly) on how examples are grouped.

Command line (prints one JSON object)::

    paddle-binbert eval --task_name SST-2 --data_dir glue/SST-2 --checkpoint runs/sst2_bibert
    paddle-binbert eval --task_name squad --data_file dev-v1.1.json --checkpoint runs/squad_bibert
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["Predictor", "evaluate_glue", "evaluate_squad", "glue_predictions", "load_predictor", "main"]

PathLike = Union[str, os.PathLike]
Outputs = Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]
ForwardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], Outputs]

#: Taskflow task names accepted by :func:`load_predictor`
PREDICTOR_TASKS = ("text_classification", "question_answering")
#: spellings of SQuAD v1.1 accepted by ``--task_name`` (compared without punctuation, lower case)


@dataclass
class Predictor:
    """A loaded checkpoint ready for batched evaluation.

    Attributes:
        forward: ``forward(input_ids, token_type_ids, attention_mask)`` on int64 numpy arrays
            ``[batch, seq_len]``; returns ``logits`` ``[batch, num_labels]`` (classification) or
            ``(start_logits, end_logits)`` ``[batch, seq_len]`` (QA), numpy float.
        tokenizer: the checkpoint's PaddleNLP tokenizer.
        config: its ``BertConfig`` (``num_labels``, ``max_position_embeddings``, ``pad_token_id``).
        kind: ``"dygraph"`` (Paddle model), ``"packed"`` (binary engine) or ``"static"`` (Paddle Inference).
        max_length: the longest input the model accepts (``max_position_embeddings``, or the
            ``max_seq_length`` of a static export).
    """

    forward: ForwardFn
    tokenizer: Any
    config: Any
    kind: str
    max_length: int

    def __call__(self, input_ids: np.ndarray, token_type_ids: np.ndarray, attention_mask: np.ndarray) -> Outputs:
        return self.forward(input_ids, token_type_ids, attention_mask)


def _dygraph_forward(model: Any, task: str) -> ForwardFn:
    """``forward`` for a Paddle model (FP or simulated quantized) in eval mode, without gradients."""
    import paddle

    def forward(input_ids: np.ndarray, token_type_ids: np.ndarray, attention_mask: np.ndarray) -> Outputs:
        inputs = [paddle.to_tensor(a, dtype="int64") for a in (input_ids, token_type_ids, attention_mask)]
        with paddle.no_grad():
            out = model(inputs[0], token_type_ids=inputs[1], attention_mask=inputs[2])
        if task == "question_answering":
            if hasattr(out, "start_logits"):
                return out.start_logits.numpy(), out.end_logits.numpy()
            return out[0].numpy(), out[1].numpy()
        if hasattr(out, "logits"):
            out = out.logits
        elif isinstance(out, (tuple, list)):
            out = out[0]
        return out.numpy()

    return forward


def _engine_forward(engine: Any) -> ForwardFn:
    """``forward`` for a packed model run by ``paddle_binbert.engine`` (already numpy in and out)."""

    def forward(input_ids: np.ndarray, token_type_ids: np.ndarray, attention_mask: np.ndarray) -> Outputs:
        return engine(input_ids, token_type_ids, attention_mask)

    return forward


def _load_static_predictor(folder: str, task: str, options: Dict[str, Any]) -> Predictor:
    from paddlenlp.transformers import BertConfig, BertTokenizer

    from .export.static import StaticPredictor

    static = StaticPredictor(folder, **options)
    wanted = "sequence_classification" if task == "text_classification" else "question_answering"
    if static.task != wanted:
        raise ValueError(f"{folder} holds an exported {static.task} model, not a {wanted} model")
    if not os.path.isfile(os.path.join(folder, "vocab.txt")):
        raise FileNotFoundError(f"{folder} holds no vocab.txt: the tokenizer files must be next to the exported model")
    config = BertConfig.from_pretrained(folder)
    max_length = int(static.max_seq_length or getattr(config, "max_position_embeddings", 512))
    return Predictor(static, BertTokenizer.from_pretrained(folder), config, "static", max_length)


def load_predictor(
    checkpoint: PathLike, task: str = "text_classification", max_length: Optional[int] = None, **kwargs: Any
) -> Predictor:
    """Load any checkpoint folder (or bare ``.pdparams`` file) as a batched :class:`Predictor`.

    Args:
        checkpoint: a folder with the tokenizer files (``vocab.txt``) and a PaddleNLP / Hugging Face
            checkpoint, a packed 1-bit model or a static export; or a bare weight file whose folder
            holds config and tokenizer.
        task: ``"text_classification"`` or ``"question_answering"``.
        max_length: the input length the caller intends to use (a warning is logged when it exceeds
            the model's limit, :attr:`Predictor.max_length`).
        **kwargs: ``params_path`` / ``config`` (bare weight files, as for Taskflow);
            ``num_threads`` / ``use_onednn`` (static exports, see
            :class:`~paddle_binbert.export.static.StaticPredictor`).

    Raises:
        FileNotFoundError: the checkpoint, its weights or its tokenizer files are missing.
        ValueError: the checkpoint holds another task's model, or cannot be loaded.
    """
    from .export.static import is_static_dir
    from .taskflow import Taskflow

    if task not in PREDICTOR_TASKS:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(PREDICTOR_TASKS)}")
    path = os.fspath(checkpoint)
    static_options = {k: kwargs.pop(k) for k in ("num_threads", "use_onednn") if k in kwargs}
    if os.path.isfile(path):
        kwargs.setdefault("params_path", path)
        path = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"checkpoint {path} is not a folder")
    if kwargs.get("params_path") is None and is_static_dir(path):
        predictor = _load_static_predictor(path, task, static_options)
        if max_length is not None:
            _capped_length(max_length, predictor)
        return predictor
    if max_length is not None:
        kwargs["max_length"] = max(4, int(max_length))  # Taskflow warns when it exceeds the model's positions
    flow = Taskflow(task, task_path=path, device=None, **kwargs)
    model = flow.model
    import paddle

    if isinstance(model, paddle.nn.Layer):
        model.eval()
        forward, kind = _dygraph_forward(model, task), "dygraph"
    else:
        forward, kind = _engine_forward(model), "packed"
    limit = int(getattr(flow.config, "max_position_embeddings", 0) or flow.max_length)
    return Predictor(forward, flow.tokenizer, flow.config, kind, limit)


# ------------------------------------------------------------------------------ batching


def _length_batches(lengths: Sequence[int], batch_size: int) -> List[List[int]]:
    """Indices grouped into batches of similar length (stable sort by length)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _pad(rows: Sequence[Sequence[int]], types: Sequence[Sequence[int]], pad_id: int) -> Tuple[np.ndarray, ...]:
    length = max(len(r) for r in rows)
    ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    token_types = np.zeros((len(rows), length), dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, (row, tt) in enumerate(zip(rows, types)):
        ids[i, : len(row)] = row
        token_types[i, : len(row)] = tt
        mask[i, : len(row)] = 1
    return ids, token_types, mask


def _capped_length(requested: int, predictor: Predictor, warn: bool = True) -> int:
    """``requested`` capped at the predictor's limit (logging a warning when ``warn``)."""
    if requested > predictor.max_length:
        if not warn:
            return predictor.max_length
        logger.warning(
            "max_seq_length=%d exceeds the model's limit %d; using %d",
            requested,
            predictor.max_length,
            predictor.max_length,
        )
        return predictor.max_length
    return int(requested)


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
    from .data.glue import check_glue_files, get_task_spec, load_glue_features

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
    length = _capped_length(max_seq_length, predictor, warn=not own)
    features = load_glue_features(data_dir, spec.name, split, predictor.tokenizer, length, max_examples)
    if not features:
        raise ValueError(f"{spec.name} {split} split in {data_dir} holds no examples")
    pad_id = int(predictor.tokenizer.pad_token_id)
    logits = np.zeros((len(features), num_labels), dtype=np.float64)
    for batch in _length_batches([len(f["input_ids"]) for f in features], batch_size):
        arrays = _pad([features[i]["input_ids"] for i in batch], [features[i]["token_type_ids"] for i in batch], pad_id)
        logits[batch] = np.asarray(predictor(*arrays), dtype=np.float64).reshape(len(batch), num_labels)
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
    from .data.glue import get_task_spec
    from .data.metrics import compute_glue_metrics

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
    from .data.squad import (
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
    length = _capped_length(max_seq_length, predictor, warn=not own)
    features = prepare_eval_features(
        examples, predictor.tokenizer, max_seq_length=length, doc_stride=doc_stride, max_query_length=max_query_length
    )
    pad_id = int(predictor.tokenizer.pad_token_id)
    start_rows: List[Optional[np.ndarray]] = [None] * len(features)
    end_rows: List[Optional[np.ndarray]] = [None] * len(features)
    for batch in _length_batches([len(f.input_ids) for f in features], batch_size):
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


# ------------------------------------------------------------------------------ command line


def main(argv: Optional[List[str]] = None) -> int:
    """``paddle-binbert eval --task_name TASK --checkpoint DIR (--data_dir DIR | --data_file FILE)``."""
    from .data.glue import GLUE_TASKS, check_glue_files, normalize_task_name
    from .data.squad import is_squad_task

    parser = argparse.ArgumentParser(
        prog="paddle-binbert eval",
        description="Evaluate a checkpoint (FP, simulated quantized, packed 1-bit or static export) on a GLUE dev "
        "set or on SQuAD v1.1; prints the metrics as JSON.",
    )
    parser.add_argument("--task_name", required=True, help=f"one of {', '.join(GLUE_TASKS)}, or squad")
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder (with the tokenizer files)")
    parser.add_argument("--data_dir", default=None, help="GLUE: the task's folder of TSV files")
    parser.add_argument("--split", default="dev", help="GLUE split (dev, dev_matched, dev_mismatched, train)")
    parser.add_argument("--data_file", default=None, help="SQuAD: the v1.1 JSON file (e.g. dev-v1.1.json)")
    parser.add_argument("--max_seq_length", type=int, default=None, help="default 128 (GLUE) / 384 (SQuAD)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_examples", type=int, default=None, help="only the first N examples")
    parser.add_argument("--doc_stride", type=int, default=128, help="SQuAD: step between window starts")
    parser.add_argument("--max_query_length", type=int, default=64, help="SQuAD")
    parser.add_argument("--n_best_size", type=int, default=20, help="SQuAD")
    parser.add_argument("--max_answer_length", type=int, default=30, help="SQuAD")
    parser.add_argument("--output_dir", default=None, help="SQuAD: write predictions.json / nbest_predictions.json")
    parser.add_argument("--num_threads", type=int, default=None, help="static exports: CPU threads (default 1)")
    parser.add_argument(
        "--onednn",
        choices=("auto", "on", "off"),
        default="auto",
        help="static exports: oneDNN kernels (auto: FP exports only; quantized students are exact without)",
    )
    args = parser.parse_args(argv)

    squad = is_squad_task(args.task_name)
    if not squad:
        try:
            task = normalize_task_name(args.task_name)
        except ValueError:
            print(f"error: unknown task {args.task_name!r}; valid: {', '.join(GLUE_TASKS)}, squad", file=sys.stderr)
            return 2
        if args.data_dir is None:
            parser.error(f"--data_dir is required for GLUE task {task}")
    elif args.data_file is None:
        parser.error("--data_file is required for --task_name squad")
    options: Dict[str, Any] = {}
    if args.num_threads is not None:
        options["num_threads"] = args.num_threads
    if args.onednn != "auto":
        options["use_onednn"] = args.onednn == "on"
    try:
        if squad:  # data first: a missing file should not wait for the model to load
            if not os.path.isfile(args.data_file):
                raise FileNotFoundError(f"SQuAD file {args.data_file} does not exist")
        else:
            check_glue_files(args.data_dir, task, [args.split])
        predictor = load_predictor(args.checkpoint, "question_answering" if squad else "text_classification", **options)
        if squad:
            metrics = evaluate_squad(
                args.checkpoint,
                args.data_file,
                max_seq_length=args.max_seq_length or 384,
                doc_stride=args.doc_stride,
                max_query_length=args.max_query_length,
                batch_size=args.batch_size,
                n_best_size=args.n_best_size,
                max_answer_length=args.max_answer_length,
                max_examples=args.max_examples,
                output_dir=args.output_dir,
                predictor=predictor,
            )
            result: Dict[str, Any] = {"task": "squad", "data_file": args.data_file}
        else:
            metrics = evaluate_glue(
                args.checkpoint,
                task,
                args.data_dir,
                max_seq_length=args.max_seq_length or 128,
                batch_size=args.batch_size,
                max_examples=args.max_examples,
                split=args.split,
                predictor=predictor,
            )
            result = {"task": task, "split": args.split}
    except (FileNotFoundError, ValueError, TypeError, RuntimeError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result["checkpoint"] = args.checkpoint
    result.update(metrics)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
