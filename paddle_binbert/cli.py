"""The ``paddle-binbert`` console command: one subcommand per library entry point.

    paddle-binbert convert SRC OUT             # Hugging Face BERT folder (or "minilm") -> PaddleNLP folder
    paddle-binbert distill --teacher_path ...  # = examples/task_distill.py (BiBERT release flags)
    paddle-binbert pack STUDENT OUT [--verify N] [--fp16_islands]   # packed 1-bit model for the engine
    paddle-binbert predict text_classification --task_path DIR "a text"   # Taskflow predictions
    paddle-binbert accounting --bits 1-1-1     # size / FLOPs in the papers' conventions

Each subcommand forwards its arguments to the module that implements it, so
``paddle-binbert SUB --help`` shows that module's flags.
"""

from __future__ import annotations

import sys
from typing import Callable, Dict, List, Optional


def _convert(argv: List[str]) -> int:
    from .convert import main

    return main(argv)


def _distill(argv: List[str]) -> int:
    from .distill.task_distill import main

    main(argv)
    return 0


def _pack(argv: List[str]) -> int:
    from .export.pack import main

    return main(argv)


def _predict(argv: List[str]) -> int:
    from .taskflow import main

    return main(argv)


def _accounting(argv: List[str]) -> int:
    from .accounting import main

    return main(argv)


SUBCOMMANDS: Dict[str, Callable[[List[str]], int]] = {
    "convert": _convert,
    "distill": _distill,
    "pack": _pack,
    "predict": _predict,
    "accounting": _accounting,
}
HELP = {
    "convert": "convert a Hugging Face BERT folder (or 'minilm') to a PaddleNLP checkpoint folder",
    "distill": "GLUE task distillation into a binarized student (examples/task_distill.py)",
    "pack": "pack a binarized student (bibert / bit / bwn) into the 1-bit model file run by the engine",
    "predict": "text_classification / question_answering predictions with a checkpoint (Taskflow)",
    "accounting": "model size (MiB) and FLOPs at given W-E-A bits",
}


def main(argv: Optional[List[str]] = None) -> int:
    """Dispatch ``paddle-binbert SUBCOMMAND [args]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        lines = ["usage: paddle-binbert SUBCOMMAND [--help] [args]", "", "subcommands:"]
        lines += [f"  {name:<12} {HELP[name]}" for name in SUBCOMMANDS]
        print("\n".join(lines))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"paddle-binbert: unknown subcommand {name!r}; valid: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    return SUBCOMMANDS[name](rest)


if __name__ == "__main__":
    raise SystemExit(main())
