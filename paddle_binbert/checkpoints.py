"""Load BERT weights from every format this project meets, into PaddleNLP (or quantized) models.

:func:`load_checkpoint` accepts

(a) a PaddleNLP checkpoint folder (``config.json`` or legacy ``model_config.json`` +
    ``model_state.pdparams`` / Paddle-named ``model.safetensors``), FP or quantized: delegated to
    :func:`paddle_binbert.models.load_model`;
(b) a bare state-dict file (``.pdparams``, e.g. the BiBERT release's
    ``sst-2_ft_model_6315.pdparams.pdparams``, also ``.safetensors`` / ``.bin``) plus an
    architecture: a built-in name (``bert-base-uncased``, ... no download), a ``config.json`` /
    ``model_config.json`` file, a folder holding one, a dict or a ``BertConfig``;
(c) a Hugging Face / PyTorch BERT folder (``config.json`` + ``model.safetensors``, or
    ``pytorch_model.bin`` when torch is importable; sharded ``*.index.json`` too): BertModel,
    BertForSequenceClassification and BertForQuestionAnswering weights, heads included;
(d) BiT / BinaryBERT quantized PyTorch checkpoints (a folder or a bare file in the layouts of (b)
    and (c), recognised by their ``input_clip_val`` / ``move.bias`` / ``clip_query`` ... tensors):
    rebuilt as the matching quantized student, their quantizer scales and shifts mapped where the
    semantics are the same, an error listing the keys otherwise (:mod:`paddle_binbert.reference_quant`).

Key names
---------
PaddleNLP's BERT parameter names have not changed across 2.x (2.0 to 2.8): ``embeddings.{word,
position,token_type}_embeddings``, ``embeddings.layer_norm``, ``encoder.layers.N.self_attn.
{q,k,v,out}_proj``, ``encoder.layers.N.{linear1,linear2,norm1,norm2}``, ``pooler.dense``, and
``classifier`` for both the sequence-classification and the QA head; Linear weights are
``[in, out]``. What does differ between files in the wild, and is normalised here:

* the base-model prefix: a head model's keys are ``bert.*``; a state dict of a ``BertModel`` (or
  ``model.bert``) has none. The prefix is added or removed to fit the target model (as
  PaddleNLP's ``from_pretrained`` does);
* wrapper prefixes ``_layers.`` (a ``paddle.DataParallel`` model's sublayers) and ``module.``;
* the ``StructuredToParameterName@@`` entry written by Paddle 2.0's ``save_dygraph``;
* heads that do not belong to the target: the pretraining heads ``cls.*`` are dropped; a
  classifier / QA head is dropped when loading a bare ``BertModel``;
* Hugging Face (PyTorch) names, in ``.safetensors`` / ``.bin`` files or inside a ``.pdparams``:
  ``encoder.layer.N.attention.self.query`` -> ``encoder.layers.N.self_attn.q_proj`` etc.,
  ``LayerNorm`` -> ``layer_norm`` / ``norm1`` / ``norm2`` (TF-era ``gamma``/``beta`` too), every
  Linear weight transposed from ``[out, in]``, ``qa_outputs`` -> ``classifier`` for QA, the
  ``embeddings.position_ids`` buffer dropped. A QA checkpoint without pooler weights (Hugging
  Face builds its QA model without pooler) keeps the model's initial pooler, which QA never uses.

PaddleNLP's ``fuse=True`` layout (``encoder.N.fused_attn.qkv_weight`` ...) is recognised and
refused with a clear message. After renaming, loading is strict: missing, unexpected and wrongly
shaped keys are listed (:class:`~paddle_binbert.models.loading.CheckpointError`, a ValueError, naming
the checkpoint), PaddleNLP folders included. Configs are checked before a model is built (sizes
are positive integers, ``hidden_size`` divisible by ``num_attention_heads``, a known
``hidden_act``: the error names the file and field) and unreadable weight files (empty,
truncated) are reported with their path.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from typing import Any, Dict, Iterable, List, Optional, Union

import numpy as np
import paddle.nn as nn
from paddlenlp.transformers import BertConfig, BertForQuestionAnswering, BertForSequenceClassification, BertModel

from .models.loading import (
    CheckpointError,
    build_model,
    check_bert_config,
    load_model,
    load_state_strict,
    model_class_for,
    read_config,
    read_config_json,
)
from .models.quantize import QUANT_CONFIG_KEY, get_bert
from .reference_quant import (
    ReferenceQuantError,
    convert_reference_state,
    is_reference_quant_state,
    reference_recipe,
)

logger = logging.getLogger(__name__)

__all__ = [
    "PACKED_KEY",
    "TASKS",
    "builtin_config",
    "checkpoint_format",
    "detect_layout",
    "hf_to_paddle_state_dict",
    "is_packed_dir",
    "load_checkpoint",
    "normalize_task",
    "read_state_dict",
    "resolve_config",
]

StateDict = Dict[str, np.ndarray]
ConfigLike = Union[None, str, os.PathLike, dict, BertConfig]

#: task name -> PaddleNLP class
TASKS = {
    "sequence_classification": BertForSequenceClassification,
    "question_answering": BertForQuestionAnswering,
    "base": BertModel,
}
_TASK_ALIASES = {
    "text_classification": "sequence_classification",
    "seq_cls": "sequence_classification",
    "qa": "question_answering",
    "bert": "base",
    "backbone": "base",
}
#: config.json key marking a packed 1-bit model (read by ``paddle_binbert.engine``, not by PaddleNLP)
PACKED_KEY = "binbert_packed"

CONFIG_FILES = ("config.json", "model_config.json")
HF_SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
HF_TORCH = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_TORCH_SUFFIXES = (".bin", ".pt", ".pth")

_HF_LAYER_RE = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias|gamma|beta)$")
_PADDLE_LAYER_RE = re.compile(r"(^|\.)encoder\.layers\.\d+\.")
_HF_ANY_LAYER_RE = re.compile(r"(^|\.)encoder\.layer\.\d+\.")
_FUSED_RE = re.compile(r"(^|\.)encoder\.\d+\.(fused_attn|ffn)\.")
# Hugging Face sublayer of encoder.layer.N -> (PaddleNLP sublayer, is a Linear)
_HF_LAYER_NAMES = {
    "attention.self.query": ("self_attn.q_proj", True),
    "attention.self.key": ("self_attn.k_proj", True),
    "attention.self.value": ("self_attn.v_proj", True),
    "attention.output.dense": ("self_attn.out_proj", True),
    "attention.output.LayerNorm": ("norm1", False),
    "intermediate.dense": ("linear1", True),
    "output.dense": ("linear2", True),
    "output.LayerNorm": ("norm2", False),
}
_BACKBONE_ROOTS = ("embeddings.", "encoder.", "pooler.")
_HEAD_ROOTS = ("classifier.", "qa_outputs.", "cls.")
_WRAPPER_PREFIXES = ("_layers.", "module.")
_STRUCTURED_KEY = "StructuredToParameterName@@"


# ------------------------------------------------------------------------------ names and configs


def normalize_task(task: str) -> str:
    """Canonical task name: ``sequence_classification``, ``question_answering`` or ``base``.

    ``text_classification`` / ``seq_cls``, ``qa`` and ``bert`` / ``backbone`` are accepted too.
    """
    key = str(task).strip().lower().replace("-", "_")
    key = _TASK_ALIASES.get(key, key)
    if key not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    return key


def builtin_config(name: str) -> BertConfig:
    """A ``BertConfig`` for a PaddleNLP built-in architecture name, without any download.

    ``bert-base-uncased`` is vocab 30522, hidden 768, 12 layers, 12 heads, FFN 3072, 512 positions,
    2 token types (PaddleNLP's ``BERT_PRETRAINED_INIT_CONFIGURATION``, which also knows
    ``bert-large-uncased``, ``bert-base-cased``, ``bert-base-chinese``, ...).
    """
    from paddlenlp.transformers.bert.configuration import BERT_PRETRAINED_INIT_CONFIGURATION

    if name not in BERT_PRETRAINED_INIT_CONFIGURATION:
        known = ", ".join(sorted(BERT_PRETRAINED_INIT_CONFIGURATION))
        raise ValueError(f"unknown built-in BERT architecture {name!r}; known names: {known}")
    return BertConfig(**copy.deepcopy(BERT_PRETRAINED_INIT_CONFIGURATION[name]))


def _config_file_in(folder: str) -> Optional[str]:
    return next((os.path.join(folder, f) for f in CONFIG_FILES if os.path.isfile(os.path.join(folder, f))), None)


def resolve_config(config: ConfigLike, default_dir: Optional[str] = None) -> BertConfig:
    """Turn an architecture description into a (fresh) ``BertConfig``.

    Args:
        config: a ``BertConfig`` (copied), a dict of config fields, a built-in name such as
            ``bert-base-uncased``, a folder with ``config.json`` / legacy ``model_config.json``, or
            the path of such a JSON file (Hugging Face and old PaddleNLP ``init_args`` layouts are
            both understood). ``None`` uses the config file found in ``default_dir``.
        default_dir: where to look when ``config`` is None (the folder of a bare weight file).

    Raises:
        ValueError: nothing usable was given or found.
    """
    if isinstance(config, BertConfig):
        config = copy.deepcopy(config)
        check_bert_config(config, "config= argument")
        return config
    if isinstance(config, dict):
        config = BertConfig.from_dict(copy.deepcopy(config))
        check_bert_config(config, "config= argument")
        return config
    if config is None:
        found = _config_file_in(default_dir) if default_dir else None
        if found is None:
            where = f" and {default_dir} holds no {' / '.join(CONFIG_FILES)}" if default_dir else ""
            raise ValueError(
                "a bare state dict needs its architecture: pass config= (a name such as 'bert-base-uncased', "
                f"a config.json or a checkpoint folder){where}"
            )
        config = found
    text = os.fspath(config)
    if os.path.isdir(text):
        if _config_file_in(text) is None:
            raise ValueError(f"{text} holds no {' or '.join(CONFIG_FILES)}")
        return read_config(text)
    if os.path.isfile(text):
        data = read_config_json(text)
        try:
            config = BertConfig.from_dict(data)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise CheckpointError(f"{text}: not a usable BERT config ({type(err).__name__}: {err})") from err
        check_bert_config(config, text)
        return config
    return builtin_config(text)


# ------------------------------------------------------------------------------ reading weights


def _read_torch(path: str) -> StateDict:
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"{path} is a PyTorch pickle: reading it needs torch, which is not installed. Install it "
            "(CPU build: `pip install torch --index-url https://download.pytorch.org/whl/cpu`) or save the model "
            "as model.safetensors instead"
        ) from None
    data = torch.load(path, map_location="cpu", weights_only=True)
    data = _unwrap(data, path)
    out: StateDict = {}
    for key, value in data.items():
        if hasattr(value, "detach"):
            tensor = value.detach()
            if tensor.dtype == torch.bfloat16:
                tensor = tensor.float()
            out[key] = tensor.numpy()
    return out


def _read_safetensors(path: str) -> StateDict:
    from safetensors.numpy import load_file

    try:
        return dict(load_file(path))
    except (TypeError, ValueError) as err:  # bfloat16 has no numpy dtype
        try:
            from safetensors import safe_open

            out: StateDict = {}
            with safe_open(path, framework="paddle") as handle:
                for key in handle.keys():
                    out[key] = handle.get_tensor(key).astype("float32").numpy()
            return out
        except Exception:  # report the original, clearer error
            raise CheckpointError(f"cannot read {path} with safetensors: {err}") from err


def _unwrap(data: Any, path: str) -> Dict[str, Any]:
    """The state dict inside a loaded object (plain, or under ``state_dict`` / ``model`` ...)."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a state dict (got {type(data).__name__})")
    if not any(hasattr(v, "shape") for v in data.values()):
        for key in ("state_dict", "model_state", "model", "module"):
            if isinstance(data.get(key), dict):
                return data[key]
        raise CheckpointError(f"{path} holds a dict without tensors (keys: {sorted(data)[:10]})")
    return data


def read_state_dict(path: str) -> StateDict:
    """Read a weight file into ``{name: numpy array}`` without renaming anything.

    ``.safetensors`` (safetensors, no pickle), ``.bin`` / ``.pt`` / ``.pth`` (PyTorch, needs torch),
    a sharded ``*.index.json`` (its ``weight_map`` shards), anything else with ``paddle.load``
    (``.pdparams``, whatever the doubled extension).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weight file {path} does not exist")
    if path.endswith(".index.json"):
        weight_map = read_config_json(path).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{path}: expected a 'weight_map' object of a sharded checkpoint")
        out: StateDict = {}
        for shard in sorted(set(map(str, weight_map.values()))):
            out.update(read_state_dict(os.path.join(os.path.dirname(path), shard)))
        return out
    if os.path.getsize(path) == 0:
        raise CheckpointError(
            f"{path}: the weight file is empty (0 bytes); it was not saved completely: save or copy it again"
        )
    try:
        if path.endswith(".safetensors"):
            return _read_safetensors(path)
        if path.endswith(_TORCH_SUFFIXES):
            return _read_torch(path)
        import paddle

        data = _unwrap(paddle.load(path, return_numpy=True), path)
    except (ImportError, MemoryError, PermissionError, CheckpointError):
        raise
    except Exception as err:  # pickle / safetensors / zip errors of every kind: name the file
        raise CheckpointError(
            f"{path}: cannot read the weights ({type(err).__name__}: {err}); the file is truncated, corrupt or "
            "not a state dict"
        ) from err
    return {k: np.asarray(v) for k, v in data.items() if k != _STRUCTURED_KEY and hasattr(v, "shape")}


# ------------------------------------------------------------------------------ renaming


def _strip_wrappers(key: str) -> str:
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


def _hf_rename(key: str, qa_head: bool) -> Optional[tuple]:
    """(PaddleNLP name, transpose?) of one Hugging Face key without the ``bert.`` prefix; None: drop it."""
    if key == "embeddings.position_ids" or key.endswith(".position_ids"):
        return None
    key = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", key))
    match = _HF_LAYER_RE.match(key)
    if match:
        index, sub, kind = match.groups()
        if sub in _HF_LAYER_NAMES:
            name, is_linear = _HF_LAYER_NAMES[sub]
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


def _has_torch_layout(state: StateDict) -> bool:
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
    ``bert.`` prefix is kept where it was (see :func:`load_checkpoint` for prefix handling).
    """
    qa_head = normalize_task(task) == "question_answering"
    torch_layout = _has_torch_layout(state)
    out: StateDict = {}
    for key, value in state.items():
        key = _strip_wrappers(key)
        prefix = "bert." if key.startswith("bert.") else ""
        renamed = _hf_rename(key[len(prefix) :], qa_head)
        if renamed is None:
            continue
        name, transpose = renamed
        transpose = transpose and torch_layout
        if name.startswith(_BACKBONE_ROOTS):
            name = prefix + name
        out[name] = np.ascontiguousarray(np.asarray(value).T) if transpose else np.asarray(value)
    return out


def _adapt_to_model(state: StateDict, model: nn.Layer, task: str, source: str) -> StateDict:
    """Fit prefixes and heads of a PaddleNLP-named state dict to ``model``; cast floats to its dtypes."""
    own = model.state_dict()
    target_prefix = "" if task == "base" else "bert."
    out: StateDict = {}
    dropped: List[str] = []
    for key, value in state.items():
        key = _strip_wrappers(key)
        bare = key[len("bert.") :] if key.startswith("bert.") else key
        if bare.startswith(_BACKBONE_ROOTS):
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


# ------------------------------------------------------------------------------ folders


def _safetensors_keys(path: str) -> List[str]:
    if path.endswith(".index.json"):
        with open(path, encoding="utf-8") as handle:
            return list(json.load(handle)["weight_map"])
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as handle:
        return list(handle.keys())


def _first_file(folder: str, names: Iterable[str]) -> Optional[str]:
    return next((os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))), None)


def is_packed_dir(folder: Union[str, os.PathLike]) -> bool:
    """Whether ``folder`` holds a packed 1-bit model (``config.json`` with a true ``binbert_packed``)."""
    cfg = os.path.join(folder, "config.json")
    if not os.path.isfile(cfg):
        return False
    with open(cfg, encoding="utf-8") as handle:
        try:
            return bool(json.load(handle).get(PACKED_KEY))
        except (ValueError, AttributeError):
            return False


def checkpoint_format(path: Union[str, os.PathLike]) -> str:
    """What ``path`` holds: ``"state_dict"`` (a file), ``"packed"`` (a packed 1-bit model folder:
    ``config.json`` with a true ``binbert_packed``), ``"paddlenlp"`` or ``"huggingface"``.

    Raises:
        FileNotFoundError: ``path`` does not exist, or is a folder without config / weights.
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        return "state_dict"
    if not os.path.isdir(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if is_packed_dir(path):
        return "packed"
    if _config_file_in(path) is None:
        raise FileNotFoundError(f"{path} holds no {' / '.join(CONFIG_FILES)}: not a checkpoint folder")
    names = os.listdir(path)
    if any(n.startswith("model_state") and n.endswith((".pdparams", ".pdparams.index.json")) for n in names):
        return "paddlenlp"
    safetensors = _first_file(path, HF_SAFETENSORS)
    if safetensors is not None:
        keys = _safetensors_keys(safetensors)
        try:
            return "huggingface" if detect_layout(keys) == "hf" else "paddlenlp"
        except ValueError:
            return "paddlenlp"  # let PaddleNLP report what it cannot load
    if _first_file(path, HF_TORCH) is not None:
        return "huggingface"
    expected = ", ".join(("model_state.pdparams",) + HF_SAFETENSORS + HF_TORCH)
    loose = sorted(n for n in names if n.endswith(".pdparams"))
    hint = f"; for a bare state dict pass the file itself, e.g. {os.path.join(path, loose[0])}" if loose else ""
    raise FileNotFoundError(f"{path} holds a config but no weights (expected one of {expected}){hint}")


def _check_architecture(config: BertConfig, task: str, source: str, strict: bool) -> None:
    """Refuse a checkpoint whose head is another task's (or absent, when ``strict``)."""
    heads = {
        "BertForSequenceClassification": "sequence_classification",
        "BertForQuestionAnswering": "question_answering",
    }
    archs = list(getattr(config, "architectures", None) or [])
    if task == "base" or not archs:
        return
    found = [heads[a] for a in archs if a in heads]
    if found and task not in found:
        raise ValueError(f"{source} holds a {archs[0]} ({found[0]} head), not a {task} model: pass task={found[0]!r}")
    if not found and strict:
        raise ValueError(
            f"{source} holds a {archs[0]} without a {task} head; pass strict=False to start from a freshly "
            "initialised head"
        )


def _classifier_labels(state: StateDict, layout: str) -> Optional[int]:
    """Number of classes of the sequence-classification head in a raw state dict, if any."""
    out_first = layout == "hf" and _has_torch_layout(state)
    for key, value in state.items():
        if _strip_wrappers(key) == "classifier.weight" and value.ndim == 2:
            return int(value.shape[0] if out_first else value.shape[1])
    return None


def _load_weights_file(
    weights: str,
    task: str,
    config: BertConfig,
    num_labels: Optional[int],
    strict: bool,
    source: str,
    allow_approximate: bool = False,
) -> nn.Layer:
    """Build the model for ``task`` from ``config`` and load a (renamed) weight file into it."""
    state = read_state_dict(weights)
    layout = detect_layout(state)
    reference = None
    if layout == "hf" and is_reference_quant_state(state):
        reference = reference_recipe(state, config)
        config = copy.deepcopy(config)
        setattr(config, QUANT_CONFIG_KEY, reference.quant_config().to_dict())
        logger.info(
            "%s: %s quantized checkpoint, loaded as %s", source, reference.family, reference.quant_config().name
        )
    if task == "sequence_classification":
        wanted = num_labels if num_labels is not None else _classifier_labels(state, layout)
        if wanted is not None and wanted != config.num_labels:
            if num_labels is None:
                logger.info("%s: classifier has %d outputs; setting num_labels=%d", source, wanted, wanted)
            config.num_labels = wanted
    model = build_model(TASKS[task], config)
    if reference is not None:
        try:
            state = convert_reference_state(state, model, reference, task, allow_approximate)
        except ReferenceQuantError as err:
            raise ReferenceQuantError(f"{source}: {err}") from None
    elif layout == "hf":
        state = hf_to_paddle_state_dict(state, task)
    state = _adapt_to_model(state, model, task, source)
    if strict:
        load_state_strict(model, state, source)
    else:
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            logger.warning("%s: keeping initial values of %s; ignoring %s", source, missing, unexpected)
        load_state_strict(model, {k: state.get(k, own[k]) for k in own}, source)
    model.eval()
    return model


def _check_hf_config(config: BertConfig, source: str) -> None:
    import paddle.nn.functional as F

    kind = getattr(config, "position_embedding_type", "absolute") or "absolute"
    if kind != "absolute":
        raise ValueError(f"{source}: position_embedding_type={kind!r} is not supported (only 'absolute')")
    if not hasattr(F, config.hidden_act):
        raise ValueError(f"{source}: hidden_act={config.hidden_act!r} has no Paddle equivalent (use gelu or relu)")


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
            :func:`~paddle_binbert.models.load_model`), a Hugging Face BERT folder
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
            :mod:`paddle_binbert.reference_quant`), accept the asymmetric LSQ of the attention
            probabilities / post-ReLU FFN2 input as our unsigned LSQ (exact when the quantized
            tensor's minimum is 0); by default such keys are an error.

    Returns:
        The model, in eval mode.

    Raises:
        ValueError: missing / unexpected / wrongly shaped keys (listed), a head of another task,
            or an unusable config; :class:`~paddle_binbert.reference_quant.ReferenceQuantError` (a
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
            "paddle_binbert.engine.load, or use paddle_binbert.taskflow.Taskflow"
        )
    if fmt == "state_dict":
        cfg = resolve_config(config, default_dir=os.path.dirname(os.path.abspath(path)))
        _check_architecture(cfg, task, path, strict=False)
        return _load_weights_file(path, task, cfg, num_labels, strict, path, allow_approximate)
    cfg = resolve_config(path)
    if fmt == "huggingface":
        _check_hf_config(cfg, path)
        _check_architecture(cfg, task, path, strict)
        weights = _first_file(path, HF_SAFETENSORS) or _first_file(path, HF_TORCH)
        return _load_weights_file(weights, task, cfg, num_labels, strict, path, allow_approximate)
    # PaddleNLP folder
    if task == "base":
        return get_bert(load_model(path, model_class=model_class_for(cfg, default=BertModel), strict=strict)).eval()
    _check_architecture(cfg, task, path, strict)
    if task == "sequence_classification" and num_labels is not None and num_labels != cfg.num_labels:
        raise ValueError(f"{path} has a {cfg.num_labels}-class classifier, but num_labels={num_labels} was asked for")
    model = load_model(path, model_class=TASKS[task], strict=strict)
    model.eval()
    return model
