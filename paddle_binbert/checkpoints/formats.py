"""What a checkpoint path holds: a bare weight file, a PaddleNLP folder, a Hugging Face folder or a
packed 1-bit model folder (:func:`checkpoint_format`)."""

from __future__ import annotations

import json
import os
from typing import Union

from ..format.packed import PACKED_KEY
from .files import CONFIG_FILES, config_file_in, first_file, weight_file_keys
from .keys import detect_layout

__all__ = ["HF_SAFETENSORS", "HF_TORCH", "PACKED_KEY", "checkpoint_format", "is_packed_dir"]

#: weight files of a Hugging Face folder, in the order they are looked for
HF_SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
HF_TORCH = ("pytorch_model.bin", "pytorch_model.bin.index.json")


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

    A folder with ``model_state*.pdparams`` is PaddleNLP's; one with ``model.safetensors`` is
    Hugging Face's when its keys have Hugging Face names (``encoder.layer.N``), else PaddleNLP's;
    ``pytorch_model.bin`` is Hugging Face's.

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
    if config_file_in(path) is None:
        raise FileNotFoundError(f"{path} holds no {' / '.join(CONFIG_FILES)}: not a checkpoint folder")
    names = os.listdir(path)
    if any(n.startswith("model_state") and n.endswith((".pdparams", ".pdparams.index.json")) for n in names):
        return "paddlenlp"
    safetensors = first_file(path, HF_SAFETENSORS)
    if safetensors is not None:
        try:
            return "huggingface" if detect_layout(weight_file_keys(safetensors)) == "hf" else "paddlenlp"
        except ValueError:
            return "paddlenlp"  # let the PaddleNLP loader report what it cannot load
    if first_file(path, HF_TORCH) is not None:
        return "huggingface"
    expected = ", ".join(("model_state.pdparams",) + HF_SAFETENSORS + HF_TORCH)
    loose = sorted(n for n in names if n.endswith(".pdparams"))
    hint = f"; for a bare state dict pass the file itself, e.g. {os.path.join(path, loose[0])}" if loose else ""
    raise FileNotFoundError(f"{path} holds a config but no weights (expected one of {expected}){hint}")
