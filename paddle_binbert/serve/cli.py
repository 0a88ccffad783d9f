"""``paddle-binbert serve DIR``: an HTTP server for a packed 1-bit folder, without Paddle.

    paddle-binbert serve sst2_bibert_packed --port 8189 [--workers 2] [--max_batch_size 32 --max_wait_ms 5]
    curl -s localhost:8189/taskflow/text_classification -H 'Content-Type: application/json' \\
        -d '{"data": {"text": ["a gripping, funny film", "dull"]}}'

The protocol is PaddleNLP SimpleServer's (``POST /taskflow/<name>``, see :mod:`.protocol`), the model
:class:`paddle_binbert.runtime.Predictor`, the server uvicorn. ``--workers N`` starts N processes,
each with its own copy of the model and ``--num_threads`` kernel threads (default: the CPUs / N).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from typing import List, Optional

from ..machine import usable_cpus
from .app import CONFIG_ENV, NAME_PATTERN, ServeConfig, build_app, load_predictor

__all__ = ["build_parser", "main"]

FACTORY = "paddle_binbert.serve.app:app_from_env"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _name(text: str) -> str:
    if not NAME_PATTERN.match(text):
        raise argparse.ArgumentTypeError("letters, digits, '_', '.' and '-' only (a URL path segment)")
    return text


def build_parser() -> argparse.ArgumentParser:
    d = ServeConfig(path="")
    p = argparse.ArgumentParser(
        prog="paddle-binbert serve",
        description="Serve a packed 1-bit folder over HTTP with PaddleNLP SimpleServer's Taskflow protocol "
        "(POST /taskflow/NAME with {'data': ..., 'parameters': {...}} -> {'result': [...]}; GET /health), "
        "with dynamic batching, on the Paddle-free runtime.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("path", metavar="DIR", help="packed folder (paddle-binbert pack), tokenizer files included")
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: all interfaces)")
    g.add_argument("--port", type=int, default=8189, help="port")
    g.add_argument("--workers", type=_positive_int, default=1, help="server processes, each with its own model")
    g.add_argument("--name", type=_name, default=None, help="model name in the URL (default: the task)")
    g.add_argument("--log_level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    g.add_argument("--access_log", action="store_true", help="log every request (off by default)")
    g = p.add_argument_group("model")
    g.add_argument("--max_length", type=_positive_int, default=d.max_length, help="tokens per input or QA window")
    g.add_argument("--num_threads", type=_positive_int, default=None, help="kernel threads per worker")
    g.add_argument("--length_config", default=None, help="per-layer token budgets, e.g. 30-18-9-6-6-6")
    g.add_argument("--top_k", type=_positive_int, default=d.top_k, help="labels per input unless a request sets top_k")
    for opt in ("doc_stride", "max_query_length", "n_best_size", "max_answer_length"):
        g.add_argument(f"--{opt}", type=_positive_int, default=None, help="question answering (Taskflow default)")
    g = p.add_argument_group("batching and limits")
    g.add_argument("--max_batch_size", type=_positive_int, default=d.max_batch_size, help="inputs per model call")
    g.add_argument(
        "--max_wait_ms",
        type=_non_negative_float,
        default=d.max_wait_ms,
        help="longest wait for more requests to batch (only while requests are arriving)",
    )
    g.add_argument("--max_queue", type=_positive_int, default=d.max_queue, help="waiting requests before 503")
    g.add_argument("--max_request_bytes", type=_positive_int, default=d.max_request_bytes, help="body size (413)")
    g.add_argument("--max_items", type=_positive_int, default=d.max_items, help="inputs per request (413)")
    g.add_argument("--max_text_chars", type=_positive_int, default=d.max_text_chars, help="characters per text (413)")
    g.add_argument(
        "--request_timeout_s", type=_non_negative_float, default=d.request_timeout_s, help="answer time limit (504)"
    )
    return p


def _config(args: argparse.Namespace) -> ServeConfig:
    keys = set(ServeConfig.__dataclass_fields__)
    return ServeConfig(**{k: v for k, v in vars(args).items() if k in keys})


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.request_timeout_s > 0:
        print("paddle-binbert serve: --request_timeout_s must be > 0", file=sys.stderr)
        return 2
    import uvicorn

    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format="%(levelname)s: %(message)s")
    config = _config(args)
    if config.num_threads is None and args.workers > 1:
        config.num_threads = max(1, usable_cpus() // args.workers)
    try:  # load once here: a bad folder fails now, and the runtime library is built before the workers start
        predictor = load_predictor(config)
    except Exception as err:  # noqa: BLE001 - a clear message, not a traceback
        print(f"paddle-binbert serve: cannot serve {args.path}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    common = dict(host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log)
    if args.workers == 1:
        uvicorn.run(build_app(config, predictor=predictor), **common)
    else:
        del predictor
        os.environ[CONFIG_ENV] = config.to_json()
        uvicorn.run(FACTORY, factory=True, workers=args.workers, **common)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
