"""The one public load: :func:`load_checkpoint` reads every checkpoint format by task.

(a) a PaddleNLP checkpoint folder (``config.json`` or legacy ``model_config.json`` +
    ``model_state.pdparams`` / Paddle-named ``model.safetensors``), FP or quantized
    (:func:`~paddle_binbert.checkpoints.paddlenlp.load_model`);
(b) a bare state-dict file (``.pdparams``, e.g. the BiBERT release's
    ``sst-2_ft_model_6315.pdparams.pdparams``, also ``.safetensors`` / ``.bin``) plus an
    architecture (:func:`~paddle_binbert.checkpoints.config.resolve_config`);
(c) a Hugging Face / PyTorch BERT folder (``config.json`` + ``model.safetensors``, or
    ``pytorch_model.bin`` when torch is importable; sharded ``*.index.json`` too): BertModel,
    BertForSequenceClassification and BertForQuestionAnswering weights, heads included
    (:mod:`paddle_binbert.checkpoints.keys`);
(d) BiT / BinaryBERT quantized PyTorch checkpoints (a folder or a bare file in the layouts of (b)
    and (c), recognised by their ``input_clip_val`` / ``move.bias`` / ``clip_query`` ... tensors):
    rebuilt as the matching quantized student (:mod:`paddle_binbert.checkpoints.reference`).

Packed 1-bit folders are refused with a pointer to ``paddle_binbert.engine.load``.
"""

from __future__ import annotations

import os
from typing import Optional, Union

import paddle.nn as nn
from paddlenlp.transformers import BertModel

from ..models.build import model_class_for
from ..models.quantize import get_bert
from .config import ConfigLike, check_hf_config, resolve_config
from .files import first_file
from .formats import HF_SAFETENSORS, HF_TORCH, PACKED_KEY, checkpoint_format
from .paddlenlp import load_model
from .tasks import TASKS, check_architecture, normalize_task
from .weights import load_weights_file

__all__ = ["load_checkpoint"]


def load_checkpoint(
    path: Union[str, os.PathLike],
    task: str = "sequence_classification",
    config: ConfigLike = None,
    num_labels: Optional[int] = None,
    strict: bool = True,
    allow_approximate: bool = False,
) -> nn.Layer:
    """Load a BERT checkpoint of any supported format as the PaddleNLP model of ``task`` (eval mode).

    Args:
        path: a PaddleNLP checkpoint folder (FP or quantized, delegated to
            :func:`~paddle_binbert.checkpoints.load_model`), a Hugging Face BERT folder
            (``model.safetensors`` or ``pytorch_model.bin``), or a bare weight file (``.pdparams``,
            ``.safetensors``, ``.bin``) with PaddleNLP or Hugging Face key names.
        task: ``"sequence_classification"``, ``"question_answering"`` or ``"base"`` (``BertModel``;
            a head model's folder gives its ``.bert``).
        config: architecture of a bare weight file (see :func:`resolve_config`; default: the
            config file next to it). A ``binbert_quant_config`` entry rebuilds the quantized
            student before loading. Ignored for folders.
        num_labels: expected number of classes (``sequence_classification``); default: the
            checkpoint's own (its classifier shape for bare files).
        strict: when False, a checkpoint without the task's head loads with a freshly initialised
            head (and unexpected keys are ignored) instead of failing.
        allow_approximate: for BiT / BinaryBERT quantized checkpoints (see
            :mod:`paddle_binbert.checkpoints.reference`), accept the asymmetric LSQ of the attention
            probabilities / post-ReLU FFN2 input as our unsigned LSQ (exact when the quantized
            tensor's minimum is 0); by default such keys are an error.

    Returns:
        The model, in eval mode.

    Raises:
        ValueError: missing / unexpected / wrongly shaped keys (listed), a head of another task,
            or an unusable config; :class:`~paddle_binbert.checkpoints.ReferenceQuantError` (a
            ValueError) lists the quantizer tensors of a BiT / BinaryBERT checkpoint that have no
            exact counterpart, with the reason.
        FileNotFoundError: ``path`` or its weights do not exist.
        ImportError: a PyTorch pickle without torch installed.
    """
    task = normalize_task(task)
    path = os.fspath(path)
    fmt = checkpoint_format(path)
    if fmt == "packed":
        raise ValueError(
            f"{path} holds a packed 1-bit model ({PACKED_KEY} in config.json): load it with "
            "paddle_binbert.engine.load, or use paddle_binbert.Taskflow"
        )
    if fmt == "state_dict":
        cfg = resolve_config(config, default_dir=os.path.dirname(os.path.abspath(path)))
        check_architecture(cfg, task, path, strict=False)
        return load_weights_file(path, TASKS[task], cfg, num_labels, strict, path, allow_approximate)
    cfg = resolve_config(path)
    if fmt == "huggingface":
        check_hf_config(cfg, path)
        check_architecture(cfg, task, path, strict)
        weights = first_file(path, HF_SAFETENSORS) or first_file(path, HF_TORCH)
        return load_weights_file(weights, TASKS[task], cfg, num_labels, strict, path, allow_approximate)
    # PaddleNLP folder
    if task == "base":
        return get_bert(load_model(path, model_class=model_class_for(cfg, default=BertModel), strict=strict)).eval()
    check_architecture(cfg, task, path, strict)
    if task == "sequence_classification" and num_labels is not None and num_labels != cfg.num_labels:
        raise ValueError(f"{path} has a {cfg.num_labels}-class classifier, but num_labels={num_labels} was asked for")
    model = load_model(path, model_class=TASKS[task], strict=strict)
    model.eval()
    return model
