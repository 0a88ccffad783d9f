"""Reading the files of a checkpoint: config JSON and weight files, every error naming the file.

Weight files: ``.pdparams`` (``paddle.load``, whatever the doubled extension), ``.safetensors``
(no pickle), ``.bin`` / ``.pt`` / ``.pth`` (PyTorch pickles, need torch) and sharded
``*.index.json`` files (their ``weight_map`` shards). Every reader returns ``{name: numpy array}``
without renaming anything (:mod:`paddle_binbert.checkpoints.keys` renames).

This is the lowest module of :mod:`paddle_binbert.checkpoints`: it imports no other module of it.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Optional

import numpy as np

from ..io_utils import decode_utf8, parse_json

__all__ = [
    "CONFIG_FILES",
    "CheckpointError",
    "StateDict",
    "config_file_in",
    "describe_value",
    "first_file",
    "read_config_json",
    "read_state_dict",
    "weight_file_keys",
]

StateDict = Dict[str, np.ndarray]

#: config file names of a checkpoint folder (``model_config.json``: PaddleNLP before 2.6)
CONFIG_FILES = ("config.json", "model_config.json")
TORCH_SUFFIXES = (".bin", ".pt", ".pth")
#: the bookkeeping entry Paddle 2.0's ``save_dygraph`` writes next to the tensors
STRUCTURED_KEY = "StructuredToParameterName@@"


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded as it is: bad config field, unreadable weight file, or weights
    that do not match the model the config describes. The message names the file (and the field or
    the offending keys)."""


def describe_value(value: Any) -> str:
    """A config value for an error message: its JSON text and its JSON kind, e.g. ``"12" (a string)``."""
    kinds = {str: "a string", bool: "a boolean", float: "a float", list: "a list", dict: "an object"}
    kind = "null" if value is None else kinds.get(type(value), type(value).__name__)
    text = json.dumps(value) if isinstance(value, (str, bool, list, dict)) or value is None else repr(value)
    return f"{text} ({kind})"


def first_file(folder: str, names: Iterable[str]) -> Optional[str]:
    """``folder/name`` for the first of ``names`` that is a file there, else None."""
    return next((os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))), None)


def config_file_in(folder: str) -> Optional[str]:
    """``folder/config.json`` (or legacy ``model_config.json``) when present."""
    return first_file(folder, CONFIG_FILES)


def read_config_json(path: str) -> Dict[str, Any]:
    """The JSON object of a config file; errors name the file (and line / column for bad JSON).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not UTF-8, not JSON, or not a JSON object.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} does not exist") from None
    data = parse_json(decode_utf8(raw, str(path), CheckpointError, "UTF-8 JSON"), str(path), CheckpointError)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object of config fields, got {describe_value(data)}")
    return data


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


def _weight_map(path: str) -> Dict[str, str]:
    weight_map = read_config_json(path).get("weight_map")
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"{path}: expected a 'weight_map' object of a sharded checkpoint")
    return weight_map


def read_state_dict(path: str) -> StateDict:
    """Read a weight file into ``{name: numpy array}`` without renaming anything.

    ``.safetensors`` (safetensors, no pickle), ``.bin`` / ``.pt`` / ``.pth`` (PyTorch, needs torch),
    a sharded ``*.index.json`` (its ``weight_map`` shards), anything else with ``paddle.load``
    (``.pdparams``, whatever the doubled extension). A state dict nested under ``state_dict`` /
    ``model`` ... is unwrapped; Paddle 2.0's ``StructuredToParameterName@@`` entry is dropped.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is empty, truncated, corrupt or holds no ``{name: tensor}`` dict
            (the message names the file).
        ImportError: a PyTorch pickle without torch installed.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weight file {path} does not exist")
    if path.endswith(".index.json"):
        out: StateDict = {}
        for shard in sorted(set(map(str, _weight_map(path).values()))):
            out.update(read_state_dict(os.path.join(os.path.dirname(path), shard)))
        return out
    if os.path.getsize(path) == 0:
        raise CheckpointError(
            f"{path}: the weight file is empty (0 bytes); it was not saved completely: save or copy it again"
        )
    try:
        if path.endswith(".safetensors"):
            return _read_safetensors(path)
        if path.endswith(TORCH_SUFFIXES):
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
    return {k: np.asarray(v) for k, v in data.items() if k != STRUCTURED_KEY and hasattr(v, "shape")}


def weight_file_keys(path: str) -> List[str]:
    """The tensor names of a weight file, read from the header only where the format allows
    (safetensors, sharded ``*.index.json``); other files are read whole."""
    path = os.fspath(path)
    if path.endswith(".index.json"):
        return list(_weight_map(path))
    if path.endswith(".safetensors") and os.path.isfile(path) and os.path.getsize(path) > 0:
        from safetensors import safe_open

        try:
            with safe_open(path, framework="numpy") as handle:
                return list(handle.keys())
        except Exception as err:  # a truncated header: name the file
            raise CheckpointError(f"{path}: cannot read the safetensors header ({type(err).__name__}: {err})") from err
    return list(read_state_dict(path))
