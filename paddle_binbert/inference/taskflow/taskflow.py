"""``Taskflow``: one-call inference with FP, simulated-quantized, packed 1-bit or static-export BERT.

Mirrors the conventions of PaddleNLP's ``paddlenlp.Taskflow`` for local checkpoints::

    from paddle_binbert import Taskflow

    cls = Taskflow("text_classification", task_path="runs/sst2_bibert")
    cls("a gripping, funny film")
    # [{"text": "a gripping, funny film", "predictions": [{"label": "1", "score": 0.93}]}]
    cls([("A man is eating.", "Someone eats.")])          # a batch holding one text pair

    qa = Taskflow("question_answering", task_path="runs/squad_bibert")
    qa({"question": "Who wrote it?", "context": "It was written by Ann Lee in 1990."})
    # [{"answer": "Ann Lee", "score": 0.81, "start": 18, "end": 25}]

``task_path`` is a folder holding the tokenizer (``vocab.txt``) and one of

* a PaddleNLP checkpoint (FP, or a simulated quantized student saved by ``save_pretrained``);
* a Hugging Face BERT checkpoint (``model.safetensors`` / ``pytorch_model.bin``);
* a packed 1-bit model (``config.json`` with a true ``binbert_packed``): loaded by
  ``paddle_binbert.engine.load(task_path)``;
* a static export (``inference.json`` + ``inference.pdiparams``, ``paddle-binbert export``);
* only a config plus a bare state dict: pass ``params_path=FILE`` (e.g. the BiBERT release's
  ``sst-2_ft_model_6315.pdparams.pdparams``), or leave the single ``*.pdparams`` file in the folder.

Loading is :func:`paddle_binbert.inference.predictor.load_predictor`'s; the task is one of
:data:`paddle_binbert.inference.taskflow.TASK_CLASSES` (one class per task). The command line is
``paddle-binbert predict`` (:mod:`paddle_binbert.inference.cli`).
"""

from __future__ import annotations

import logging
import os
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

from ..predictor import Predictor, load_predictor
from .front import TASK_CLASSES, TaskFrontEnd
from .task import cap_max_length, check_sizes

logger = logging.getLogger(__name__)

__all__ = ["LOADING_OPTIONS", "Taskflow"]

#: options of every task, passed to :func:`~paddle_binbert.inference.predictor.load_predictor`
LOADING_OPTIONS = ("params_path", "config", "length_config")


class Taskflow(TaskFrontEnd):
    """PaddleNLP-style inference pipeline for ``text_classification`` and ``question_answering``.

    Args:
        task: ``"text_classification"`` or ``"question_answering"``.
        task_path: checkpoint folder (see the module docstring); it must hold the tokenizer files.
        batch_size: texts (classification) or windows (QA) per forward pass.
        max_length: longest input in tokens, special tokens included: longer classification
            inputs are truncated (pairs: longest first), QA contexts are split into windows. Capped
            at the model's ``max_position_embeddings`` (a static export's ``max_seq_length``).
        device: Paddle device (``"cpu"``, ``"gpu"``, ``"gpu:0"`` ...), set with ``paddle.set_device``.
        **kwargs: ``params_path`` (bare state dict to load, architecture from ``task_path`` or
            ``config``), ``config`` (architecture of ``params_path``: a name such as
            ``bert-base-uncased`` or a config path), ``length_config`` (Dynamic-TinyBERT token budgets
            ``l_1 >= ... >= l_L``, one per layer, as a sequence or ``"30-18-9-6-6-6"``, e.g. the pick
            of ``paddle-binbert search-length``: runs Drop-and-Restore, see
            :func:`paddle_binbert.length_adaptive.length_adaptive_forward`; packed 1-bit folders run it
            inside the engine's kernels, ``engine.load(path)(..., length_config=C)``); for
            classification ``top_k`` (labels returned per input, default 1) and ``id2label``
            (overrides the checkpoint's names; ``task_path/id2label.json`` is read too, as PaddleNLP
            does); for QA ``doc_stride`` (step between window starts, default ``max_length // 3``),
            ``max_query_length`` (default ``min(64, max_length // 2)``), ``n_best_size`` (20) and
            ``max_answer_length`` (30 tokens).

    Attributes: ``predictor`` (the loaded :class:`~paddle_binbert.inference.predictor.Predictor`),
    ``task_instance`` (the :class:`~.task.Task` it runs), and for convenience ``model``, ``config``,
    ``tokenizer``, ``length_config``, ``packed``; the task's settings (``batch_size``,
    ``max_length``, ``top_k``, ``id2label``, ``doc_stride`` ...) are ``task_instance``'s (reading or
    setting them on the Taskflow reads or sets them there, see :class:`~.front.TaskFrontEnd`).
    """

    def __init__(
        self,
        task: str,
        task_path: Optional[Union[str, os.PathLike]] = None,
        batch_size: int = 8,
        max_length: int = 128,
        device: str = "cpu",
        **kwargs: Any,
    ) -> None:
        if task not in TASK_CLASSES:
            raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASK_CLASSES)}")
        task_class = TASK_CLASSES[task]
        kwargs = task_class.check(f"Taskflow({task!r})", kwargs, extra=LOADING_OPTIONS)
        if task_path is None:
            raise ValueError("Taskflow needs task_path= (a checkpoint folder with the tokenizer files)")
        batch_size, max_length = check_sizes(batch_size, max_length)
        self.task = task
        self.task_path = os.fspath(task_path)
        if not os.path.isdir(self.task_path):
            raise FileNotFoundError(f"task_path {self.task_path} is not a folder")
        loading = {name: kwargs.pop(name) for name in LOADING_OPTIONS if name in kwargs}
        self.predictor: Predictor = load_predictor(self.task_path, task, device=device or None, **loading)
        self.build_task(
            self.predictor,
            self.predictor.tokenizer,
            batch_size,
            cap_max_length(max_length, self.predictor.max_length, logger),
            kwargs,
            encode=self.encode_pairs,
            num_labels=int(getattr(self.predictor.config, "num_labels", 2)),
            folder=self.task_path,
            label_fallback=getattr(self.predictor.config, "id2label", None),
        )

    def encode_pairs(self, pairs: Sequence[Tuple[str, Optional[str]]]) -> List[Mapping[str, Sequence[int]]]:
        """PaddleNLP tokenizer encodings of ``(text, text_pair or None)`` pairs, at most ``max_length``
        tokens each (pairs: truncated longest first)."""
        return [
            self.tokenizer(a, text_pair=b, max_length=self.max_length, truncation=True, return_token_type_ids=True)
            for a, b in pairs
        ]

    # the loaded model
    @property
    def model(self) -> Any:
        """The model the predictor runs (a ``paddle.nn.Layer``, an engine or a ``StaticPredictor``)."""
        return self.predictor.model

    @property
    def config(self) -> Any:
        """The model's ``BertConfig``."""
        return self.predictor.config

    @property
    def tokenizer(self) -> Any:
        """The checkpoint's PaddleNLP ``BertTokenizer``."""
        return self.predictor.tokenizer

    @property
    def length_config(self) -> Optional[Tuple[int, ...]]:
        """The Drop-and-Restore token budgets every forward pass applies, or None (full length)."""
        return self.predictor.length_config

    @property
    def packed(self) -> bool:
        """Whether ``task_path`` is a packed 1-bit folder (run by ``paddle_binbert.engine``)."""
        return self.predictor.kind == "packed"

    def __repr__(self) -> str:
        return f"Taskflow({self.task!r}, task_path={self.task_path!r}, kind={self.predictor.kind})"
