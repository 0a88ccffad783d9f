"""The ``paddle-binbert`` console command: one subcommand per library entry point.

    paddle-binbert convert SRC OUT             # Hugging Face BERT folder (or "minilm") -> PaddleNLP folder
    paddle-binbert distill --teacher_path ...  # = examples/task_distill.py (BiBERT release flags)
    paddle-binbert pack STUDENT OUT [--verify N] [--fp16_islands]   # packed 1-bit model for the engine
    paddle-binbert predict text_classification --task_path DIR "a text"   # Taskflow predictions
    paddle-binbert serve PACKED_DIR [--host --port --workers ...]   # HTTP server (PaddleNLP protocol), no Paddle
    paddle-binbert accounting --bits 1-1-1     # size / FLOPs in the papers' conventions
    paddle-binbert export CHECKPOINT OUT [--max_seq_length N] [--verify N]   # static graph for Paddle Inference
    paddle-binbert eval --task_name SST-2 --data_dir DIR --checkpoint DIR    # GLUE / SQuAD dev metrics as JSON
    paddle-binbert search-length --checkpoint DIR --task_name SST-2 --data_dir DIR --output_dir OUT
    paddle-binbert bench inference|train_step [args]   # benchmarks/bench_*.py (source checkouts)

Each subcommand forwards its arguments to the module that implements it, so
``paddle-binbert SUB --help`` shows that module's flags.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Callable, Dict, List, Optional


def _convert(argv: List[str]) -> int:
    from .convert import main

    return main(argv)


def _distill(argv: List[str]) -> int:
    from .distill.cli import main

    main(argv)
    return 0


def _pack(argv: List[str]) -> int:
    from .export.pack import main

    return main(argv)


def _predict(argv: List[str]) -> int:
    from .inference.cli import predict_main

    return predict_main(argv)


def _serve(argv: List[str]) -> int:
    from .serve.cli import main  # Paddle-free: the runtime, FastAPI and uvicorn

    return main(argv)


def _accounting(argv: List[str]) -> int:
    from .accounting import main

    return main(argv)


def _export(argv: List[str]) -> int:
    from .export.static import main

    return main(argv)


def _eval(argv: List[str]) -> int:
    from .inference.cli import eval_main

    return eval_main(argv)


def _search_length(argv: List[str]) -> int:
    from .length_adaptive.search import main

    return main(argv)


BENCHMARKS = {"inference": "bench_inference.py", "train_step": "bench_train_step.py"}


def _bench(argv: List[str]) -> int:
    """Run ``benchmarks/bench_<NAME>.py`` of the source checkout in a subprocess, forwarding ``argv[1:]``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHMARKS:
        print(f"usage: paddle-binbert bench {{{','.join(BENCHMARKS)}}} [--help] [args]", file=sys.stderr)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"paddle-binbert bench: unknown benchmark {argv[0]!r}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    script = os.path.join(root, "benchmarks", BENCHMARKS[argv[0]])
    if not os.path.isfile(script):
        print(
            f"paddle-binbert bench: {script} not found; the benchmarks ship with the source checkout "
            "(install it with `pip install -e .`)",
            file=sys.stderr,
        )
        return 2
    return subprocess.call([sys.executable, script] + list(argv[1:]))


SUBCOMMANDS: Dict[str, Callable[[List[str]], int]] = {
    "convert": _convert,
    "distill": _distill,
    "pack": _pack,
    "predict": _predict,
    "serve": _serve,
    "accounting": _accounting,
    "export": _export,
    "eval": _eval,
    "search-length": _search_length,
    "bench": _bench,
}
HELP = {
    "convert": "convert a Hugging Face BERT folder (or 'minilm') to a PaddleNLP checkpoint folder",
    "distill": "GLUE task distillation into a binarized student (examples/task_distill.py)",
    "pack": "pack a binarized student (bibert / bit / bwn) into the 1-bit model file run by the engine",
    "predict": "text_classification / question_answering predictions with a checkpoint (Taskflow)",
    "serve": "serve a packed folder over HTTP (PaddleNLP SimpleServer protocol, dynamic batching; no Paddle)",
    "accounting": "model size (MiB) and FLOPs at given W-E-A bits",
    "export": "export an FP / simulated-quantized checkpoint as a static graph for Paddle Inference",
    "eval": "GLUE (--data_dir) or SQuAD v1.1 (--data_file) dev metrics of any checkpoint folder, as JSON",
    "search-length": "evolutionary search of per-layer token budgets of a length-adaptive checkpoint (Pareto front)",
    "bench": "run benchmarks/bench_inference.py or bench_train_step.py (source checkouts)",
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
