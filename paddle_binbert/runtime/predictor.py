"""``Predictor``: text in, predictions out, for packed folders, without Paddle.

The output format is :class:`paddle_binbert.Taskflow`'s::

    from paddle_binbert.runtime import Predictor

    cls = Predictor("sst2_bibert_packed", batch_size=32, max_length=128)
    cls(["a gripping, funny film", ("a premise", "a hypothesis")])
    # [{"text": "a gripping, funny film", "predictions": [{"label": "1", "score": 0.93}]}, ...]

    qa = Predictor("squad_bibert_packed", max_length=384)
    qa({"question": "Who wrote it?", "context": "It was written by Ann Lee in 1990."})
    # [{"answer": "Ann Lee", "score": 0.81, "start": 18, "end": 25}]

The task follows from the packed model (classification or question answering). Tokenization is
:class:`~paddle_binbert.runtime.WordPieceTokenizer` (the ids of PaddleNLP's ``BertTokenizer``);
question answering reuses the SQuAD windowing and post-processing of
:mod:`paddle_binbert.data.squad` (plain Python / numpy). Tested equal to ``Taskflow`` on the same
packed folder (``tests/runtime/test_predictor.py``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..engine.layout import parse_length_config
from ..inference.taskflow.front import TASK_CLASSES, TaskFrontEnd
from ..inference.taskflow.task import cap_max_length, check_sizes
from .model import RuntimeModel, load
from .tokenizer import WordPieceTokenizer

__all__ = ["Predictor"]

logger = logging.getLogger("paddle_binbert.runtime")


class Predictor(TaskFrontEnd):
    """Classification or question answering with a packed folder on the runtime (no Paddle).

    Args:
        path: a packed folder (``model.safetensors``, ``config.json`` with ``binbert_packed``) holding
            the tokenizer files (``vocab.txt``, ``tokenizer_config.json``).
        batch_size: texts (classification) or windows (QA) per forward pass.
        max_length: longest input in tokens, special tokens included (longer classification inputs are
            truncated, pairs longest-first; QA contexts are split into windows); capped at the model's
            ``max_position_embeddings``.
        num_threads: threads of the kernels (default: the CPUs this process may use).
        length_config: one non-increasing token budget per layer (Drop-and-Restore), a sequence or
            ``"30-18-9-6-6-6"``.
        **options: classification ``top_k`` (labels per input, default 1) and ``id2label`` (overrides the
            folder's ``id2label.json`` and config names); QA ``doc_stride`` (default ``max_length // 3``),
            ``max_query_length`` (default ``min(64, max_length // 2)``), ``n_best_size`` (20) and
            ``max_answer_length`` (30), as :class:`paddle_binbert.Taskflow`.

    Calling it predicts one input or a list of them, one result dict per input, in Taskflow's format
    (it runs :attr:`task_instance`, a :class:`~paddle_binbert.inference.taskflow.TextClassificationTask`
    or :class:`~paddle_binbert.inference.taskflow.QuestionAnsweringTask`, whose settings ``top_k``,
    ``id2label``, ``doc_stride`` ... read and set as its attributes, see
    :class:`~paddle_binbert.inference.taskflow.front.TaskFrontEnd`). Classification: a text, a
    ``(text, pair)`` tuple, or a list of texts and / or pairs -> ``{"text": input, "predictions":
    [{"label", "score"}, ...]}`` (softmax scores, best first, ``top_k`` of them), or ``{"text": input,
    "score": value}`` for a regression model. QA: ``{"question", "context"}`` or a list of them ->
    ``{"answer", "score", "start", "end"}`` with ``answer == context[start:end]``.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike],
        batch_size: int = 8,
        max_length: int = 128,
        num_threads: Optional[int] = None,
        length_config: Union[None, str, Sequence[int]] = None,
        **options: Any,
    ) -> None:
        self.path = Path(path)
        batch_size, max_length = check_sizes(batch_size, max_length)
        self.model: RuntimeModel = load(self.path, num_threads=num_threads)
        self.task = "text_classification" if self.model.task == "classification" else "question_answering"
        task_class = TASK_CLASSES[self.task]
        options = task_class.check(f"Predictor for {self.task}", options)
        if isinstance(length_config, str):  # "64,60,48" or "64-60-48", as Taskflow / search-length
            length_config = parse_length_config(length_config)
        self.length_config = self.model.check_length_config(length_config)
        self.tokenizer = WordPieceTokenizer.from_pretrained(self.path)
        classification = self.task == "text_classification"
        self.build_task(
            self.forward,
            self.tokenizer,
            batch_size,
            cap_max_length(max_length, int(self.model.meta["max_position_embeddings"]), logger),
            options,
            encode=self.encode_pairs,
            num_labels=int(self.model.meta["num_labels"]) if classification else 0,
            folder=self.path,
            label_fallback=self.model.config.get("id2label"),
        )

    def forward(self, input_ids: np.ndarray, token_type_ids: np.ndarray, attention_mask: np.ndarray) -> Any:
        """The packed model on a padded batch, with :attr:`length_config`."""
        return self.model(input_ids, token_type_ids, attention_mask, length_config=self.length_config)

    def encode_pairs(self, pairs: Sequence[Tuple[str, Optional[str]]]) -> List[Mapping[str, Sequence[int]]]:
        """WordPiece encodings of ``(text, text_pair or None)`` pairs, at most ``max_length`` tokens each."""
        return self.tokenizer.encode_batch(pairs, max_length=self.max_length)

    def __repr__(self) -> str:
        return (
            f"Predictor({str(self.path)!r}, task={self.task}, batch_size={self.batch_size}, "
            f"max_length={self.max_length})"
        )
