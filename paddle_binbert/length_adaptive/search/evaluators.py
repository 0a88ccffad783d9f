"""Dev-set scores of a length configuration: one interface, one adapter per task.

:class:`DevEvaluator` holds the dev inputs padded to ``max_seq_length`` and runs them in batches
through :func:`~paddle_binbert.length_adaptive.drop_restore.length_adaptive_forward` (Drop-and-Restore,
Kim & Cho 2021), each batch trimmed to its longest sequence; ``evaluator(config)`` returns the task's
metrics and :attr:`DevEvaluator.metric` names the one the search maximises. A task adapter (a
subclass) says which checkpoints fit, how its dev file becomes inputs, what it keeps of each batch's
output and how that becomes metrics:

* :class:`GlueDevEvaluator`: a ``BertForSequenceClassification`` on a GLUE dev split; the task's
  main metric (accuracy, F1, Matthews or Pearson correlation; in [0, 1]).
* :class:`SquadDevEvaluator`: a ``BertForQuestionAnswering`` on SQuAD v1.1 questions: their sliding
  windows of ``max_seq_length``, Drop-and-Restore so every token gets a start and end logit, the
  project's SQuAD post-processing and the official exact match / F1 (in percent); the metric is F1.

Budgets are absolute token counts at ``max_seq_length`` and ``n_i = min(l_i, n_{i-1})``, so trimming a
batch to its longest sequence changes no output on the real tokens (padding is never kept over a
real token and is masked as a key; tests/length_adaptive/test_drop_restore.py) and saves the padding's work.

:class:`DevSetConfig` names the dev data (the ``search-length`` flags of the same names);
:func:`check_model` and :func:`load_dev_evaluator` pick the adapter for its task.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np

from ...data.sampler import dev_subset
from .errors import SearchInputError
from .evolution import config_key

__all__ = [
    "DEFAULT_MAX_SEQ_LENGTH",
    "DevEvaluator",
    "DevSetConfig",
    "GlueDevEvaluator",
    "SquadDevEvaluator",
    "check_model",
    "evaluator_class",
    "load_dev_evaluator",
]

#: input length when none is given: (GLUE, SQuAD)
DEFAULT_MAX_SEQ_LENGTH = (128, 384)


@dataclass
class DevSetConfig:
    """The dev data that scores a configuration (the ``search-length`` flags of the same names).

    Attributes:
        task_name: a GLUE task (``SST-2``, ``MRPC``, ...) or ``squad`` (SQuAD v1.1).
        data_dir: GLUE: the folder with the task's dev file.
        predict_file: SQuAD: the v1.1 dev JSON file.
        max_seq_length: input length (GLUE example or SQuAD window); the budgets are token counts at it.
            None: 128 for GLUE, 384 for SQuAD (:data:`DEFAULT_MAX_SEQ_LENGTH`).
        batch_size: evaluation batch size (SQuAD: windows).
        max_eval_examples: score on this many dev examples only (SQuAD: questions), None for all.
        subset: which ones: ``"spread"`` (evenly spaced over the file) or ``"first"``.
        doc_stride, max_query_length: SQuAD sliding windows.
        n_best_size, max_answer_length: SQuAD answer decoding.
    """

    task_name: str
    data_dir: Optional[str] = None
    predict_file: Optional[str] = None
    max_seq_length: Optional[int] = None
    batch_size: int = 32
    max_eval_examples: Optional[int] = None
    subset: str = "spread"
    doc_stride: int = 128
    max_query_length: int = 64
    n_best_size: int = 20
    max_answer_length: int = 30

    def __post_init__(self) -> None:
        if self.max_seq_length is None:
            self.max_seq_length = DEFAULT_MAX_SEQ_LENGTH[int(self.squad)]

    @property
    def squad(self) -> bool:
        """Whether the task is SQuAD v1.1."""
        from ...data.squad import is_squad_task

        return is_squad_task(self.task_name)


class DevEvaluator(ABC):
    """Scores a length configuration on dev inputs (module docstring); ``__call__(config)`` returns the
    metrics dict (``config`` None: the full model) and :attr:`metric` names the main one.

    Args:
        model: the checkpoint's model (FP or quantized), run in eval mode without gradients.
        arrays: ``input_ids``, ``token_type_ids`` and ``attention_mask``: ``[n, max_seq_length]`` int64
            arrays, kept as attributes of the same names.
        batch_size: evaluation batch size.

    A task adapter implements :meth:`head_outputs`, :meth:`score`, :meth:`check_head` and
    :meth:`from_dev_set` and sets :attr:`metric`.
    """

    metric: str = ""

    def __init__(self, model: Any, arrays: Dict[str, np.ndarray], batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.input_ids = arrays["input_ids"]
        self.token_type_ids = arrays["token_type_ids"]
        self.attention_mask = arrays["attention_mask"]

    def __call__(self, config: Optional[Sequence[int]]) -> Dict[str, float]:
        """The task's metrics of the model under ``config`` (None: every layer keeps every token)."""
        return self.score([self.head_outputs(out) for out in self._outputs(config)])

    def _outputs(self, config: Optional[Sequence[int]]):
        """Yield the :class:`~paddle_binbert.length_adaptive.drop_restore.LengthAdaptiveOutput` of every
        batch, in order (eval mode, no grad); token-level outputs are ``[batch, longest sequence of the batch]``."""
        import paddle
        from tqdm.auto import tqdm

        from ..drop_restore import length_adaptive_forward

        self.model.eval()
        starts = range(0, len(self.input_ids), self.batch_size)
        label = "full" if config is None else config_key(config)
        with paddle.no_grad():
            for start in tqdm(starts, desc=f"dev {label}", unit="batch", leave=False):
                sl = slice(start, start + self.batch_size)
                width = max(int(self.attention_mask[sl].sum(axis=1).max()), 1)
                arrays = (self.input_ids, self.token_type_ids, self.attention_mask)
                tensors = [paddle.to_tensor(a[sl, :width]) for a in arrays]
                yield length_adaptive_forward(self.model, *tensors, length_config=config)

    @abstractmethod
    def head_outputs(self, out: Any) -> Any:
        """What :meth:`score` needs of one batch's output, fetched to the host (numpy)."""

    @abstractmethod
    def score(self, batches: List[Any]) -> Dict[str, float]:
        """The metrics of the :meth:`head_outputs` of every batch, in order."""

    @classmethod
    @abstractmethod
    def check_head(cls, model: Any, dev: DevSetConfig, checkpoint: str) -> None:
        """Raise :class:`SearchInputError` when ``model`` (loaded from ``checkpoint``) has no head for the task."""

    @classmethod
    @abstractmethod
    def from_dev_set(cls, model: Any, tokenizer: Any, dev: DevSetConfig) -> Tuple[DevEvaluator, Dict[str, Any]]:
        """The evaluator of ``dev``'s examples and what it scores on (for the search cache's ``meta``)."""


class GlueDevEvaluator(DevEvaluator):
    """GLUE adapter: ``features`` (``input_ids``, ``token_type_ids``, ``labels``, e.g. from
    :func:`~paddle_binbert.data.glue.load_glue_features`) truncated to ``max_seq_length``, scored by
    :func:`~paddle_binbert.data.metrics.compute_glue_metrics` on the logits; :attr:`metric` is the
    task's main metric."""

    def __init__(
        self,
        model: Any,
        features: List[Dict[str, Any]],
        task_name: str,
        max_seq_length: int,
        pad_token_id: int = 0,
        batch_size: int = 32,
    ) -> None:
        from ...data.metrics import main_metric_name

        if not features:
            raise ValueError("the dev set is empty")
        n = len(features)
        arrays = {
            "input_ids": np.full((n, max_seq_length), pad_token_id, dtype="int64"),
            "token_type_ids": np.zeros((n, max_seq_length), dtype="int64"),
            "attention_mask": np.zeros((n, max_seq_length), dtype="int64"),
        }
        for i, feat in enumerate(features):
            ids = feat["input_ids"][:max_seq_length]
            arrays["input_ids"][i, : len(ids)] = ids
            arrays["token_type_ids"][i, : len(ids)] = feat["token_type_ids"][: len(ids)]
            arrays["attention_mask"][i, : len(ids)] = 1
        super().__init__(model, arrays, batch_size)
        self.task_name = task_name
        self.metric = main_metric_name(task_name)
        self.labels = np.array([feat["labels"] for feat in features])

    def head_outputs(self, out: Any) -> np.ndarray:
        """The batch's logits."""
        return out.logits.numpy()

    def score(self, batches: List[np.ndarray]) -> Dict[str, float]:
        """GLUE metrics of the logits against the labels."""
        from ...data.metrics import compute_glue_metrics

        return compute_glue_metrics(self.task_name, np.concatenate(batches), self.labels)

    @classmethod
    def check_head(cls, model: Any, dev: DevSetConfig, checkpoint: str) -> None:
        """A GLUE task needs a ``BertForSequenceClassification``."""
        from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification

        if not isinstance(model, BertForSequenceClassification):
            hint = " (a SQuAD checkpoint: pass --task_name squad --predict_file FILE)"
            raise SearchInputError(
                f"--checkpoint {checkpoint} holds a {type(model).__name__}, but the GLUE task {dev.task_name} needs a "
                "classification checkpoint (BertForSequenceClassification)"
                + (hint if isinstance(model, BertForQuestionAnswering) else "")
            )

    @classmethod
    def from_dev_set(cls, model: Any, tokenizer: Any, dev: DevSetConfig) -> Tuple[DevEvaluator, Dict[str, Any]]:
        """The task's first dev split in ``dev.data_dir`` (``dev.max_eval_examples`` of it, chosen by
        ``dev.subset``)."""
        from ...data.glue import get_task_spec, load_glue_features

        split = get_task_spec(dev.task_name).dev_splits[0]
        features = load_glue_features(dev.data_dir, dev.task_name, split, tokenizer, dev.max_seq_length)
        features = dev_subset(features, dev.max_eval_examples, dev.subset == "spread")
        pad_id = tokenizer.pad_token_id or 0
        evaluator = cls(model, features, dev.task_name, dev.max_seq_length, pad_id, dev.batch_size)
        return evaluator, dict(split=split, max_seq_length=dev.max_seq_length, num_examples=len(features))


class SquadDevEvaluator(DevEvaluator):
    """SQuAD v1.1 adapter for a ``BertForQuestionAnswering``.

    The sliding windows of ``data`` (a :class:`~paddle_binbert.data.squad.datasets.SquadEvalData`, e.g. from
    :func:`~paddle_binbert.data.squad.datasets.load_squad_eval`, at most ``max_seq_length`` tokens: budgets are
    absolute token counts at that length) run in batches of ``batch_size`` windows; Drop-and-Restore
    restores the dropped tokens so every position gets a start and end logit.
    :func:`~paddle_binbert.data.squad.postprocess_predictions` (``n_best_size``, ``max_answer_length``)
    picks each question's answer over all its windows and :func:`~paddle_binbert.data.squad.squad_evaluate`
    scores it with the official v1.1 rules.

    ``__call__(config)`` returns ``{"exact_match", "f1"}`` in percent (as everywhere else in the
    project); :attr:`metric` is ``"f1"``. The answers of the last call stay in :attr:`last_predictions`.
    """

    def __init__(
        self,
        model: Any,
        data: Any,
        max_seq_length: int,
        pad_token_id: int = 0,
        batch_size: int = 32,
        n_best_size: int = 20,
        max_answer_length: int = 30,
    ) -> None:
        from ...data.squad import collate_features

        if not data.features:
            raise ValueError("the SQuAD dev set has no window")
        super().__init__(model, collate_features(data.features, pad_token_id, max_length=max_seq_length), batch_size)
        self.data = data
        self.metric = "f1"
        self.n_best_size = n_best_size
        self.max_answer_length = max_answer_length
        self.last_predictions: Optional[Dict[str, str]] = None

    def head_outputs(self, out: Any) -> Tuple[np.ndarray, np.ndarray]:
        """The batch's start and end logits: one row per window, as wide as its batch (>= the window)."""
        return out.start_logits.numpy(), out.end_logits.numpy()

    def score(self, batches: List[Tuple[np.ndarray, np.ndarray]]) -> Dict[str, float]:
        """Exact match and F1 of the decoded answers (kept in :attr:`last_predictions`)."""
        from ...data.squad import postprocess_predictions, squad_evaluate

        starts = [row for start, _ in batches for row in start]
        ends = [row for _, end in batches for row in end]
        predictions, _ = postprocess_predictions(
            self.data.examples,
            self.data.features,
            starts,
            ends,
            n_best_size=self.n_best_size,
            max_answer_length=self.max_answer_length,
        )
        self.last_predictions = predictions
        scores = squad_evaluate(self.data.dataset, predictions)
        return {"exact_match": float(scores["exact_match"]), "f1": float(scores["f1"])}

    @classmethod
    def check_head(cls, model: Any, dev: DevSetConfig, checkpoint: str) -> None:
        """SQuAD needs a ``BertForQuestionAnswering``."""
        from paddlenlp.transformers import BertForQuestionAnswering

        if not isinstance(model, BertForQuestionAnswering):
            raise SearchInputError(
                f"--checkpoint {checkpoint} holds a {type(model).__name__}, but --task_name squad needs a SQuAD "
                "question answering checkpoint (BertForQuestionAnswering, e.g. from examples/run_squad.py)"
            )

    @classmethod
    def from_dev_set(cls, model: Any, tokenizer: Any, dev: DevSetConfig) -> Tuple[DevEvaluator, Dict[str, Any]]:
        """The questions of ``dev.predict_file`` (``dev.max_eval_examples`` of them, chosen by ``dev.subset``)
        and their windows; a malformed file raises :class:`SearchInputError` naming it and the question."""
        from ...data.squad.datasets import load_squad_eval

        try:
            data = load_squad_eval(
                dev.predict_file,
                tokenizer,
                dev.max_seq_length,
                dev.doc_stride,
                dev.max_query_length,
                dev.max_eval_examples,
                spread=dev.subset == "spread",
            )
        except ValueError as err:  # SquadFormatError names the file and the question
            raise SearchInputError(f"--predict_file: {err}") from err
        pad_id = tokenizer.pad_token_id or 0
        evaluator = cls(model, data, dev.max_seq_length, pad_id, dev.batch_size, dev.n_best_size, dev.max_answer_length)
        meta = dict(
            predict_file=os.path.abspath(dev.predict_file),
            max_seq_length=dev.max_seq_length,
            doc_stride=dev.doc_stride,
            max_query_length=dev.max_query_length,
            n_best_size=dev.n_best_size,
            max_answer_length=dev.max_answer_length,
            num_examples=len(data.examples),
            num_windows=len(data.features),
        )
        return evaluator, meta


def evaluator_class(dev: DevSetConfig) -> Type[DevEvaluator]:
    """The task adapter of ``dev``: :class:`SquadDevEvaluator` for SQuAD, else :class:`GlueDevEvaluator`."""
    return SquadDevEvaluator if dev.squad else GlueDevEvaluator


def check_model(model: Any, dev: DevSetConfig, checkpoint: str) -> None:
    """Raise :class:`SearchInputError` when ``model`` (loaded from ``checkpoint``) has no head for ``dev``'s
    task or fewer position embeddings than ``dev.max_seq_length``."""
    from ...models import get_bert

    evaluator_class(dev).check_head(model, dev, checkpoint)
    positions = getattr(get_bert(model).config, "max_position_embeddings", None)
    if positions is not None and dev.max_seq_length > positions:
        raise SearchInputError(
            f"--max_seq_length {dev.max_seq_length} exceeds the {positions} position embeddings of "
            f"--checkpoint {checkpoint}"
        )


def load_dev_evaluator(model: Any, tokenizer: Any, dev: DevSetConfig) -> Tuple[DevEvaluator, Dict[str, Any]]:
    """``(evaluator, description)`` of ``dev``'s examples for ``model``: the task adapter's
    :meth:`DevEvaluator.from_dev_set`. The description (split or file, input length, example count)
    goes into the search cache's ``meta``."""
    return evaluator_class(dev).from_dev_set(model, tokenizer, dev)
