"""Checkpoints: one public load for every format this project meets, and the HF -> Paddle conversion.

:func:`load_checkpoint` (by task) reads PaddleNLP folders (FP or quantized), bare state dicts
(``.pdparams``, ``.safetensors``, ``.bin``) with an architecture, Hugging Face / PyTorch BERT
folders and BiT / BinaryBERT quantized reference checkpoints; :func:`load_model` (by class, from
``config.architectures``) reads PaddleNLP folders and bare state dicts. Loading is strict (missing,
unexpected and wrongly shaped keys are listed in a :class:`CheckpointError`, a ValueError naming
the file), configs are checked before a model is built, unreadable files are named.

Modules, from the bottom up:

- :mod:`~.files`: reading config JSON and weight files (Paddle, safetensors, PyTorch, sharded);
- :mod:`~.config`: checking and resolving ``BertConfig`` s (built-in names, files, folders);
- :mod:`~.tasks`: task names and their PaddleNLP classes;
- :mod:`~.keys`: state-dict key names (Hugging Face -> PaddleNLP, prefixes, heads);
- :mod:`~.strict`: strict matching of weights against a model;
- :mod:`~.formats`: what a path holds (PaddleNLP, Hugging Face, bare file, packed);
- :mod:`~.reference`: BiT / BinaryBERT quantized reference checkpoints -> our quantizers;
- :mod:`~.weights`: one weight file -> the model its config describes;
- :mod:`~.paddlenlp`: :func:`load_model`;
- :mod:`~.loader`: :func:`load_checkpoint`;
- :mod:`~.convert`: Hugging Face folder -> PaddleNLP folder (:func:`convert_hf_bert`) and backbone
  names (:func:`resolve_backbone`).
"""

from .config import builtin_config, check_bert_config, read_config, resolve_config
from .convert import (
    MINILM_ALIASES,
    convert_hf_bert,
    default_cache_dir,
    is_paddlenlp_checkpoint,
    minilm_source_dir,
    resolve_backbone,
)
from .files import CheckpointError, read_config_json, read_state_dict
from .formats import PACKED_KEY, checkpoint_format, is_packed_dir
from .keys import detect_layout, hf_to_paddle_state_dict
from .loader import load_checkpoint
from .paddlenlp import load_model
from .reference import (
    ReferenceQuantError,
    ReferenceRecipe,
    convert_reference_state,
    is_reference_quant_state,
    reference_recipe,
)
from .strict import load_state_strict
from .tasks import TASKS, normalize_task
from .weights import load_weights_file

__all__ = [
    "MINILM_ALIASES",
    "PACKED_KEY",
    "TASKS",
    "CheckpointError",
    "ReferenceQuantError",
    "ReferenceRecipe",
    "builtin_config",
    "check_bert_config",
    "checkpoint_format",
    "convert_hf_bert",
    "convert_reference_state",
    "default_cache_dir",
    "detect_layout",
    "hf_to_paddle_state_dict",
    "is_packed_dir",
    "is_paddlenlp_checkpoint",
    "is_reference_quant_state",
    "load_checkpoint",
    "load_model",
    "load_state_strict",
    "load_weights_file",
    "minilm_source_dir",
    "normalize_task",
    "read_config",
    "read_config_json",
    "read_state_dict",
    "reference_recipe",
    "resolve_backbone",
    "resolve_config",
]
