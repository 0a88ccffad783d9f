"""One loader for inference: any checkpoint folder -> a :class:`Predictor` (numpy in, numpy out).

    from paddle_binbert.inference import load_predictor

    predictor = load_predictor("runs/sst2_bibert", "text_classification")
    logits = predictor(input_ids, token_type_ids, attention_mask)       # int64 numpy -> numpy

This is the only place that picks an inference backend; :class:`paddle_binbert.Taskflow` and the
evaluators (:mod:`paddle_binbert.inference.evaluate`) load through it. The backend (``kind``)
follows from the folder:

* ``static``: ``inference.json`` (or ``.pdmodel``) + ``inference.pdiparams`` written by
  :func:`~paddle_binbert.export.static.export_static`; run by
  :class:`~paddle_binbert.export.static.StaticPredictor` (Paddle Inference);
* ``packed``: ``config.json`` with a true ``binbert_packed``; run by :func:`paddle_binbert.engine.load`;
* ``dygraph``: anything else, loaded by :func:`paddle_binbert.checkpoints.load_checkpoint`: a
  PaddleNLP checkpoint (FP or a simulated quantized student), a Hugging Face BERT folder, or a bare
  state dict (``params_path=``, or the folder's single ``*.pdparams``).

The folder must also hold the tokenizer files (``vocab.txt``). A bare weight file may be given as
``checkpoint``: its folder then gives config and tokenizer.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np

from .taskflow.task import cap_max_length

logger = logging.getLogger(__name__)

__all__ = ["KINDS", "PREDICTOR_TASKS", "Predictor", "load_predictor"]

PathLike = Union[str, os.PathLike]
Outputs = Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]
ForwardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], Outputs]

#: Taskflow task name -> :func:`paddle_binbert.checkpoints.load_checkpoint` / static-export task
PREDICTOR_TASKS = {"text_classification": "sequence_classification", "question_answering": "question_answering"}
#: the backends, in the order they are recognised
KINDS = ("static", "packed", "dygraph")


@dataclass
class Predictor:
    """A loaded checkpoint ready for batched inference.

    Attributes:
        forward: ``forward(input_ids, token_type_ids, attention_mask)`` on int64 numpy arrays
            ``[batch, seq_len]``; returns ``logits`` ``[batch, num_labels]`` (classification) or
            ``(start_logits, end_logits)`` ``[batch, seq_len]`` (QA), numpy float.
        tokenizer: the checkpoint's PaddleNLP tokenizer.
        config: its ``BertConfig`` (``num_labels``, ``max_position_embeddings``, ``pad_token_id``).
        kind: ``"dygraph"`` (Paddle model), ``"packed"`` (binary engine) or ``"static"`` (Paddle Inference).
        max_length: the longest input the model accepts (``max_position_embeddings``, or the
            ``max_seq_length`` of a static export).
        model: what ``forward`` runs (a ``paddle.nn.Layer`` in eval mode, an engine, a ``StaticPredictor``).
        task: ``"text_classification"`` or ``"question_answering"``.
        length_config: the Drop-and-Restore token budgets ``forward`` applies, or None (full length).
    """

    forward: ForwardFn
    tokenizer: Any
    config: Any
    kind: str
    max_length: int
    model: Any = None
    task: str = "text_classification"
    length_config: Optional[Tuple[int, ...]] = None

    def __call__(self, input_ids: np.ndarray, token_type_ids: np.ndarray, attention_mask: np.ndarray) -> Outputs:
        """:attr:`forward` on one padded batch."""
        return self.forward(input_ids, token_type_ids, attention_mask)

    def cap_length(self, requested: int, warn: bool = True) -> int:
        """``requested`` capped at :attr:`max_length` (logging a warning when ``warn``)."""
        if not warn:
            return min(int(requested), self.max_length)
        return cap_max_length(int(requested), self.max_length, logger)


# ------------------------------------------------------------------------------ forward functions


def to_numpy(value: Any) -> np.ndarray:
    """A Paddle tensor (or anything array-like) as a numpy array."""
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def model_outputs(output: Any, task: str) -> Outputs:
    """A model's output as numpy: ``logits`` (classification) or ``(start_logits, end_logits)`` (QA),
    whether the model returns a PaddleNLP output object, a tuple or a tensor."""
    if task == "question_answering":
        if hasattr(output, "start_logits"):
            return to_numpy(output.start_logits), to_numpy(output.end_logits)
        return to_numpy(output[0]), to_numpy(output[1])
    if hasattr(output, "logits"):
        output = output.logits
    elif isinstance(output, (tuple, list)):
        output = output[0]
    return to_numpy(output)


def dygraph_forward(model: Any, task: str, length_config: Optional[Sequence[int]] = None) -> ForwardFn:
    """``forward`` for a Paddle model (FP or simulated quantized), without gradients; with
    ``length_config``, Drop-and-Restore (:func:`paddle_binbert.length_adaptive.length_adaptive_forward`)."""
    import paddle

    def forward(input_ids: np.ndarray, token_type_ids: np.ndarray, attention_mask: np.ndarray) -> Outputs:
        inputs = {
            name: paddle.to_tensor(array, dtype="int64")
            for name, array in (
                ("input_ids", input_ids),
                ("token_type_ids", token_type_ids),
                ("attention_mask", attention_mask),
            )
        }
        with paddle.no_grad():
            if length_config is not None:
                from ..length_adaptive import length_adaptive_forward

                return model_outputs(length_adaptive_forward(model, length_config=length_config, **inputs), task)
            return model_outputs(model(**inputs), task)

    return forward


def engine_forward(engine: Any, task: str, length_config: Optional[Sequence[int]] = None) -> ForwardFn:
    """``forward`` for a packed model of ``paddle_binbert.engine`` (numpy in and out); with
    ``length_config``, Drop-and-Restore inside the engine's kernels."""

    def forward(input_ids: np.ndarray, token_type_ids: np.ndarray, attention_mask: np.ndarray) -> Outputs:
        if length_config is not None:
            return model_outputs(engine(input_ids, token_type_ids, attention_mask, length_config=length_config), task)
        return model_outputs(engine(input_ids, token_type_ids, attention_mask), task)

    return forward


# ------------------------------------------------------------------------------ loading


def params_file(folder: str, params_path: Optional[PathLike]) -> Optional[str]:
    """``params_path``, or the single ``*.pdparams`` of a folder without standard weights (None: the
    folder's standard weights)."""
    if params_path is not None:
        return os.fspath(params_path)
    names = os.listdir(folder)
    if any(n.startswith(("model_state", "model.safetensors", "pytorch_model")) for n in names):
        return None
    loose = sorted(n for n in names if n.endswith(".pdparams"))
    if len(loose) > 1:
        raise ValueError(f"{folder} holds several .pdparams files {loose}: pass params_path= to pick one")
    return os.path.join(folder, loose[0]) if loose else None


def load_packed_model(folder: str) -> Any:
    """The packed 1-bit model of ``folder``, via ``paddle_binbert.engine.load``."""
    from ..checkpoints import PACKED_KEY

    try:
        from ..engine import load as engine_load
    except ImportError as err:
        raise RuntimeError(
            f"{folder} holds a packed 1-bit model ({PACKED_KEY!r} in config.json), which needs the binary inference "
            f"engine paddle_binbert.engine; it cannot be imported here ({err}). Install a paddle_binbert build with "
            "the engine, or use the simulated (fake-quant) checkpoint folder instead"
        ) from err
    return engine_load(folder)


def load_tokenizer(folder: str) -> Any:
    """PaddleNLP's ``BertTokenizer`` of ``folder`` (FileNotFoundError naming it without ``vocab.txt``)."""
    from paddlenlp.transformers import BertTokenizer

    if not os.path.isfile(os.path.join(folder, "vocab.txt")):
        raise FileNotFoundError(f"{folder} holds no vocab.txt: the tokenizer files must be in the checkpoint folder")
    return BertTokenizer.from_pretrained(folder)


def check_length_config(value: Any, config: Any, model: Any = None) -> Optional[Tuple[int, ...]]:
    """``length_config`` (a sequence or ``"30-18-9-6-6-6"``) checked against the model: one
    non-increasing token budget per layer; an engine ``model`` may refuse more (its
    ``check_length_config``, e.g. BWN's all-ones attention)."""
    if value is None:
        return None
    from ..engine.layout import check_length_config as check_budgets
    from ..engine.layout import parse_length_config

    budgets = parse_length_config(value) if isinstance(value, str) else value
    budgets = check_budgets(budgets, int(config.num_hidden_layers))
    if model is not None and hasattr(model, "check_length_config"):
        budgets = model.check_length_config(budgets)
    return tuple(budgets)


def load_static_predictor(folder: str, task: str, num_threads: Optional[int], use_onednn: Optional[bool]) -> Predictor:
    """A static export (Paddle Inference) as a :class:`Predictor`."""
    from paddlenlp.transformers import BertConfig

    from ..export.static import StaticPredictor

    options = {k: v for k, v in (("num_threads", num_threads), ("use_onednn", use_onednn)) if v is not None}
    static = StaticPredictor(folder, **options)
    if static.task != PREDICTOR_TASKS[task]:
        raise ValueError(f"{folder} holds an exported {static.task} model, not a {PREDICTOR_TASKS[task]} model")
    tokenizer = load_tokenizer(folder)
    config = BertConfig.from_pretrained(folder)
    max_length = int(static.max_seq_length or getattr(config, "max_position_embeddings", 512))
    return Predictor(static, tokenizer, config, "static", max_length, model=static, task=task)


def load_predictor(
    checkpoint: PathLike,
    task: str = "text_classification",
    max_length: Optional[int] = None,
    *,
    params_path: Optional[PathLike] = None,
    config: Optional[str] = None,
    length_config: Union[None, str, Sequence[int]] = None,
    num_threads: Optional[int] = None,
    use_onednn: Optional[bool] = None,
    device: Optional[str] = None,
) -> Predictor:
    """Load any checkpoint folder (or bare ``.pdparams`` file) as a batched :class:`Predictor`.

    Args:
        checkpoint: a folder with the tokenizer files (``vocab.txt``) and a PaddleNLP / Hugging Face
            checkpoint, a packed 1-bit model or a static export (see the module docstring); or a bare
            weight file whose folder holds config and tokenizer.
        task: ``"text_classification"`` or ``"question_answering"``.
        max_length: the input length the caller intends to use (a warning is logged when it exceeds
            the model's limit, :attr:`Predictor.max_length`).
        params_path: a bare state dict to load (architecture from the folder or ``config``).
        config: the architecture of ``params_path``: a name such as ``bert-base-uncased`` or a config path.
        length_config: Dynamic-TinyBERT token budgets ``l_1 >= ... >= l_L``, one per layer (a sequence
            or ``"30-18-9-6-6-6"``): Drop-and-Restore in every forward pass (dygraph and packed models).
        num_threads, use_onednn: static exports only, see
            :class:`~paddle_binbert.export.static.StaticPredictor`.
        device: Paddle device set with ``paddle.set_device`` (``"cpu"``, ``"gpu:0"`` ...); None keeps it.

    Raises:
        FileNotFoundError: the checkpoint, its weights or its tokenizer files are missing.
        ValueError: unknown task, the checkpoint holds another task's model, or a bad ``length_config``.
        RuntimeError: a packed folder without the engine.
    """
    if task not in PREDICTOR_TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(PREDICTOR_TASKS)}")
    path = os.fspath(checkpoint)
    if os.path.isfile(path):
        params_path = path if params_path is None else params_path
        path = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"checkpoint {path} is not a folder")
    if device:
        import paddle

        paddle.set_device(device)
    predictor = load_backend(path, task, params_path, config, length_config, num_threads, use_onednn)
    if max_length is not None:
        predictor.cap_length(max_length)
    return predictor


def load_backend(
    path: str,
    task: str,
    params_path: Optional[PathLike],
    config: Optional[str],
    length_config: Union[None, str, Sequence[int]],
    num_threads: Optional[int],
    use_onednn: Optional[bool],
) -> Predictor:
    """The backend dispatch of :func:`load_predictor` (``path`` is an existing folder)."""
    from ..checkpoints import is_packed_dir, load_checkpoint
    from ..export.static import is_static_dir

    if params_path is None and is_static_dir(path):
        if length_config is not None:
            raise ValueError(f"{path} holds a static export, which runs at full length: length_config is not supported")
        return load_static_predictor(path, task, num_threads, use_onednn)
    if params_path is None and is_packed_dir(path):
        from paddlenlp.transformers import BertConfig

        model = load_packed_model(path)
        if hasattr(model, "eval"):
            model.eval()
        model_config = getattr(model, "config", None)
        if model_config is None or not hasattr(model_config, "num_labels"):
            model_config = BertConfig.from_pretrained(path)
        kind = "packed"
    else:
        weights = params_file(path, params_path)
        if weights is not None:
            model = load_checkpoint(weights, task=PREDICTOR_TASKS[task], config=config or path)
        else:
            model = load_checkpoint(path, task=PREDICTOR_TASKS[task])
        model.eval()
        model_config, kind = model.config, "dygraph"
    budgets = check_length_config(length_config, model_config, model)
    import paddle

    if isinstance(model, paddle.nn.Layer):
        forward = dygraph_forward(model, task, budgets)
    else:  # the engine: numpy in and out
        forward = engine_forward(model, task, budgets)
    tokenizer = load_tokenizer(path)
    limit = int(getattr(model_config, "max_position_embeddings", 0) or 512)
    return Predictor(forward, tokenizer, model_config, kind, limit, model=model, task=task, length_config=budgets)
