"""State-dict key names: Hugging Face -> PaddleNLP renaming, prefixes, heads (the one HF -> Paddle mapping).

PaddleNLP's BERT parameter names have not changed across 2.x (2.0 to 2.8): ``embeddings.{word,
position,token_type}_embeddings``, ``embeddings.layer_norm``, ``encoder.layers.N.self_attn.
{q,k,v,out}_proj``, ``encoder.layers.N.{linear1,linear2,norm1,norm2}``, ``pooler.dense``, and
``classifier`` for both the sequence-classification and the QA head; Linear weights are
``[in, out]``. What does differ between files in the wild, and is normalised here:

* the base-model prefix: a head model's keys are ``bert.*``; a state dict of a ``BertModel`` (or
  ``model.bert``) has none. The prefix is added or removed to fit the target model (as
  PaddleNLP's ``from_pretrained`` does) by :func:`adapt_to_model`;
* wrapper prefixes ``_layers.`` (a ``paddle.DataParallel`` model's sublayers) and ``module.``
  (:func:`strip_wrappers`);
* heads that do not belong to the target: the pretraining heads ``cls.*`` are dropped; a
  classifier / QA head is dropped when loading a bare ``BertModel``;
* Hugging Face (PyTorch) names (:func:`hf_to_paddle_state_dict`):
  ``encoder.layer.N.attention.self.query`` -> ``encoder.layers.N.self_attn.q_proj`` etc.,
  ``LayerNorm`` -> ``layer_norm`` / ``norm1`` / ``norm2`` (TF-era ``gamma``/``beta`` too), every
  Linear weight transposed from ``[out, in]``, ``qa_outputs`` -> ``classifier`` for QA, the
  ``embeddings.position_ids`` buffer dropped. A QA checkpoint without pooler weights (Hugging
  Face builds its QA model without pooler) keeps the model's initial pooler, which QA never uses.

PaddleNLP's ``fuse=True`` layout (``encoder.N.fused_attn.qkv_weight`` ...) is recognised and
refused with a clear message (:func:`detect_layout`).
"""

from __future__ import annotations

import logging
import re
from typing import Iterable, List, Optional, Tuple

import numpy as np
import paddle.nn as nn

from .files import StateDict
from .tasks import normalize_task

logger = logging.getLogger(__name__)

__all__ = [
    "BACKBONE_ROOTS",
    "HF_LAYER_NAMES",
    "adapt_to_model",
    "classifier_labels",
    "detect_layout",
    "has_torch_layout",
    "hf_to_paddle_state_dict",
    "strip_wrappers",
]

_HF_LAYER_RE = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias|gamma|beta)$")
_PADDLE_LAYER_RE = re.compile(r"(^|\.)encoder\.layers\.\d+\.")
_HF_ANY_LAYER_RE = re.compile(r"(^|\.)encoder\.layer\.\d+\.")
_FUSED_RE = re.compile(r"(^|\.)encoder\.\d+\.(fused_attn|ffn)\.")
#: Hugging Face sublayer of ``encoder.layer.N`` -> (PaddleNLP sublayer of ``encoder.layers.N``, is a Linear)
HF_LAYER_NAMES = {
    "attention.self.query": ("self_attn.q_proj", True),
    "attention.self.key": ("self_attn.k_proj", True),
    "attention.self.value": ("self_attn.v_proj", True),
    "attention.output.dense": ("self_attn.out_proj", True),
    "attention.output.LayerNorm": ("norm1", False),
    "intermediate.dense": ("linear1", True),
    "output.dense": ("linear2", True),
    "output.LayerNorm": ("norm2", False),
}
#: first name parts of the backbone's parameters (under ``bert.`` in a head model)
BACKBONE_ROOTS = ("embeddings.", "encoder.", "pooler.")
_HEAD_ROOTS = ("classifier.", "qa_outputs.", "cls.")
_WRAPPER_PREFIXES = ("_layers.", "module.")


def strip_wrappers(key: str) -> str:
    """``key`` without the prefixes of model wrappers: ``_layers.`` (``paddle.DataParallel``) and
    ``module.`` (``torch.nn.DataParallel``), however often they are nested."""
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def detect_layout(keys: Iterable[str]) -> str:
    """``"paddle"`` (PaddleNLP names) or ``"hf"`` (Hugging Face / PyTorch names) for a BERT state dict.

    Raises:
        NotImplementedError: PaddleNLP's fused layout (``fuse=True``).
        ValueError: no BERT encoder layer among the keys.
    """
    keys = list(keys)
    if any(_PADDLE_LAYER_RE.search(k) for k in keys):
        return "paddle"
    if any(_HF_ANY_LAYER_RE.search(k) for k in keys):
        return "hf"
    if any(_FUSED_RE.search(k) for k in keys):
        raise NotImplementedError(
            "this state dict uses PaddleNLP's fused encoder layout (config.fuse=True: encoder.N.fused_attn.*), "
            "which runs on GPU only; load it there with fuse=True and re-save the model with fuse=False"
        )
    sample = ", ".join(keys[:8])
    raise ValueError(f"not a BERT state dict: no encoder.layers.N.* / encoder.layer.N.* keys (first keys: {sample})")


def _hf_rename(key: str, qa_head: bool) -> Optional[Tuple[str, bool]]:
    """(PaddleNLP name, transpose?) of one Hugging Face key without the ``bert.`` prefix; None: drop it."""
    if key == "embeddings.position_ids" or key.endswith(".position_ids"):
        return None
    key = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", key))
    match = _HF_LAYER_RE.match(key)
    if match:
        index, sub, kind = match.groups()
        if sub in HF_LAYER_NAMES:
            name, is_linear = HF_LAYER_NAMES[sub]
            return f"encoder.layers.{index}.{name}.{kind}", is_linear and kind == "weight"
        return key, False
    if key.startswith("embeddings.LayerNorm."):
        return "embeddings.layer_norm." + key.rsplit(".", 1)[1], False
    if key == "pooler.dense.weight":
        return key, True
    if key in ("classifier.weight", "classifier.bias"):
        return key, key.endswith("weight")
    if qa_head and key in ("qa_outputs.weight", "qa_outputs.bias"):
        return "classifier." + key.split(".")[1], key.endswith("weight")
    return key, False


def has_torch_layout(state: StateDict) -> bool:
    """Whether Linear weights under Hugging Face names are torch ``[out, in]`` (the normal case).

    A port that kept the Hugging Face names but saved Paddle ``[in, out]`` matrices is recognised
    by its FFN input weight (``intermediate.dense``: torch ``[intermediate, hidden]``).
    """
    for key, value in state.items():
        if key.endswith("intermediate.dense.weight"):
            bias = state.get(key[: -len("weight")] + "bias")
            if bias is not None and value.ndim == 2 and value.shape[0] != value.shape[1]:
                return value.shape[0] == bias.shape[0]
    return True


def hf_to_paddle_state_dict(state: StateDict, task: str = "sequence_classification") -> StateDict:
    """Rename a Hugging Face BERT state dict to PaddleNLP names and layouts.

    Linear weights go from torch ``[out, in]`` to Paddle ``[in, out]`` (unless the FFN weights
    show they already are ``[in, out]``); ``LayerNorm`` becomes
    ``layer_norm`` / ``norm1`` / ``norm2``; for ``task="question_answering"`` the ``qa_outputs``
    head becomes PaddleNLP's ``classifier``; the ``position_ids`` buffer is dropped. The
    ``bert.`` prefix is kept where it was (:func:`adapt_to_model` fits it to a model).
    """
    qa_head = normalize_task(task) == "question_answering"
    torch_layout = has_torch_layout(state)
    out: StateDict = {}
    for key, value in state.items():
        key = strip_wrappers(key)
        prefix = "bert." if key.startswith("bert.") else ""
        renamed = _hf_rename(key[len(prefix) :], qa_head)
        if renamed is None:
            continue
        name, transpose = renamed
        transpose = transpose and torch_layout
        if name.startswith(BACKBONE_ROOTS):
            name = prefix + name
        out[name] = np.ascontiguousarray(np.asarray(value).T) if transpose else np.asarray(value)
    return out


def classifier_labels(state: StateDict, layout: str) -> Optional[int]:
    """Number of classes of the sequence-classification head in a raw state dict, if any."""
    out_first = layout == "hf" and has_torch_layout(state)
    for key, value in state.items():
        if strip_wrappers(key) == "classifier.weight" and value.ndim == 2:
            return int(value.shape[0] if out_first else value.shape[1])
    return None


def adapt_to_model(state: StateDict, model: nn.Layer, task: str, source: str) -> StateDict:
    """Fit the prefixes and heads of a PaddleNLP-named state dict to ``model`` (of ``task``); cast
    floats to the model's dtypes.

    The ``bert.`` prefix is added (head models) or removed (``BertModel``), wrapper prefixes are
    stripped, ``cls.*`` pretraining heads (and any head, for ``base``) are dropped. A model without
    pooler weights in ``state`` keeps its own pooler unless ``task`` uses it (sequence
    classification).
    """
    own = model.state_dict()
    target_prefix = "" if task == "base" else "bert."
    out: StateDict = {}
    dropped: List[str] = []
    for key, value in state.items():
        key = strip_wrappers(key)
        bare = key[len("bert.") :] if key.startswith("bert.") else key
        if bare.startswith(BACKBONE_ROOTS):
            out[target_prefix + bare] = value
        elif bare.startswith("cls.") or (task == "base" and bare.startswith(_HEAD_ROOTS)):
            dropped.append(key)
        else:
            out[key] = value
    if dropped:
        logger.info("%s: ignoring %d head tensors not used by %s (%s ...)", source, len(dropped), task, dropped[0])
    pooler = [k for k in own if k.startswith(target_prefix + "pooler.")]
    if task != "sequence_classification" and pooler and not any(k in out for k in pooler):
        logger.warning(
            "%s has no pooler weights; the %s model keeps its initial pooler (unused by %s)",
            source,
            type(model).__name__,
            task,
        )
        for key in pooler:
            out[key] = own[key].numpy()
    for key, value in out.items():
        if key in own:
            target = str(own[key].dtype).split(".")[-1]
            if value.dtype.kind == "f" and target in ("float16", "float32", "float64") and value.dtype != target:
                out[key] = value.astype(target)
    return out
