"""The FastAPI app serving a packed 1-bit folder with :class:`paddle_binbert.runtime.Predictor`.

    from paddle_binbert.serve import ServeConfig, build_app
    app = build_app(ServeConfig(path="sst2_bibert_packed"))     # then uvicorn.run(app, port=8189)

Routes:

- ``POST /taskflow/{name}``: PaddleNLP SimpleServer's Taskflow protocol (:mod:`.protocol`):
  ``{"data": ..., "parameters": {...}}`` -> ``{"result": [one result per input]}``, results in
  Taskflow's format (``{"text", "predictions": [{"label", "score"}]}`` or ``{"answer", "score",
  "start", "end"}``). The inputs of concurrent requests are run together (:class:`.Batcher`: up to
  ``max_batch_size`` inputs per model call, waiting at most ``max_wait_ms`` for more, and only while
  other requests are being received).
- ``GET /health``: the model, the batching and limit settings, and counters.

Errors are JSON ``{"detail": message}``: 400 unreadable body, 404 unknown model name, 413 request
too large (bytes, inputs or characters), 422 wrong shape or type, 503 queue full or shutting down,
504 timed out, 500 the model failed.

Imports neither Paddle nor PaddleNLP (only fastapi, numpy, safetensors, tokenizers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Optional, Sequence, Union

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .batcher import Batcher, BatcherClosed, QueueFull
from .protocol import Limits, RequestError, parse_request

__all__ = ["CONFIG_ENV", "ServeConfig", "app_from_env", "build_app", "create_app", "load_predictor"]

logger = logging.getLogger("paddle_binbert.serve")

#: environment variable carrying the ServeConfig (JSON) to the worker processes of ``--workers N``
CONFIG_ENV = "PADDLE_BINBERT_SERVE_CONFIG"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass
class ServeConfig:
    """Everything ``paddle-binbert serve`` sets (see ``paddle-binbert serve --help``)."""

    path: str
    name: Optional[str] = None
    max_length: int = 128
    num_threads: Optional[int] = None
    length_config: Optional[Union[str, List[int]]] = None
    top_k: int = 1
    doc_stride: Optional[int] = None
    max_query_length: Optional[int] = None
    n_best_size: Optional[int] = None
    max_answer_length: Optional[int] = None
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 1024
    max_request_bytes: int = 1 << 20
    max_items: int = 256
    max_text_chars: int = 20000
    request_timeout_s: float = 60.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        values = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def load_predictor(config: ServeConfig) -> Any:
    """The runtime Predictor of ``config.path``; for classification it returns every label's score
    (each request keeps its own ``top_k`` of them), and it has run once (warm-up)."""
    from ..runtime import Predictor

    qa_options = ("doc_stride", "max_query_length", "n_best_size", "max_answer_length")
    options = {k: getattr(config, k) for k in qa_options if getattr(config, k) is not None}
    predictor = Predictor(
        config.path,
        batch_size=config.max_batch_size,
        max_length=config.max_length,
        num_threads=config.num_threads,
        length_config=config.length_config,
        **options,  # a classifier rejects them with a TypeError naming them
    )
    # run once, so that a broken model fails at start rather than on the first request
    if predictor.task == "question_answering":
        predictor([{"question": "warm up", "context": "the model runs once before serving"}])
    else:
        predictor.top_k = predictor.num_labels
        predictor(["warm up"])
    return predictor


def _model_info(predictor: Any) -> Dict[str, Any]:
    """What /health says about the model (whatever of it ``predictor`` exposes)."""
    info: Dict[str, Any] = {"task": getattr(predictor, "task", None)}
    if getattr(predictor, "path", None) is not None:
        info["path"] = str(predictor.path)
    model = getattr(predictor, "model", None)
    meta = getattr(model, "meta", None) or {}
    for key in ("preset", "architecture", "num_layers", "hidden_size", "num_heads", "vocab_size", "num_labels"):
        if key in meta:
            info[key] = meta[key]
    for key in ("max_length", "doc_stride", "max_query_length", "n_best_size", "max_answer_length"):
        if isinstance(getattr(predictor, key, None), int):
            info[key] = getattr(predictor, key)
    if getattr(predictor, "length_config", None) is not None:
        info["length_config"] = list(predictor.length_config)
    if isinstance(getattr(predictor, "id2label", None), dict):
        info["labels"] = [predictor.id2label[i] for i in sorted(predictor.id2label)]
    if model is not None:
        info["num_threads"] = getattr(model, "num_threads", None)
        info["isa"] = getattr(model, "isa_name", None)
    return info


def _keep_top_k(results: Sequence[Dict[str, Any]], top_k: int) -> List[Dict[str, Any]]:
    out = []
    for result in results:
        if isinstance(result, dict) and isinstance(result.get("predictions"), list):
            result = dict(result, predictions=result["predictions"][:top_k])
        out.append(result)
    return out


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = f"the request body is larger than {limit} bytes (--max_request_bytes)"
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise RequestError(400, f"invalid Content-Length header {length[:40]!r}")
        if int(length) > limit:
            raise RequestError(413, too_large)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(413, too_large)
    return bytes(body)


def create_app(
    predictor: Any,
    name: Optional[str] = None,
    max_batch_size: int = 32,
    max_wait_ms: float = 5.0,
    max_queue: int = 1024,
    limits: Optional[Limits] = None,
    top_k: int = 1,
    request_timeout_s: float = 60.0,
) -> FastAPI:
    """A FastAPI app serving ``predictor`` (callable on a list of inputs, returning one Taskflow result
    per input; ``predictor.task`` ``text_classification`` or ``question_answering``) at
    ``POST /taskflow/{name}`` (``name`` defaults to the task), with dynamic batching and ``GET /health``.
    ``app.state.batcher`` is the :class:`.Batcher`."""
    limits = limits or Limits()
    task = getattr(predictor, "task", None)
    if task not in ("text_classification", "question_answering"):
        raise ValueError(f"the predictor's task must be text_classification or question_answering, got {task!r}")
    name = name or task
    if not NAME_PATTERN.match(name):
        raise ValueError(f"name {name!r} must be letters, digits, '_', '.' or '-' (it is a URL path segment)")
    if not (isinstance(top_k, int) and top_k >= 1):
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if not request_timeout_s > 0:
        raise ValueError(f"request_timeout_s must be > 0, got {request_timeout_s!r}")
    for key, value in limits.as_dict().items():
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
    incoming = [0]  # requests being read and checked (on the event loop); read by the batcher's thread
    batcher = Batcher(
        predictor,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        incoming=lambda: incoming[0],
    )
    route = f"/taskflow/{name}"
    model_info = _model_info(predictor)
    started = time.time()
    ignored_logged: set = set()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        logger.info("serving %s at POST %s", model_info.get("path", task), route)
        yield
        await asyncio.get_running_loop().run_in_executor(None, batcher.stop)

    app = FastAPI(title="paddle_binbert serve", lifespan=lifespan, redoc_url=None)
    app.state.batcher = batcher
    app.state.predictor = predictor
    app.state.route = route

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:  # pragma: no cover - safety net
        logger.exception("unexpected error on %s", request.url.path)
        return _error(500, f"internal error: {type(err).__name__}: {err}")

    @app.get("/health")
    async def health() -> Dict[str, Any]:
        return {
            "status": "stopping" if batcher.closed else "ok",
            "name": name,
            "task": task,
            "route": route,
            "model": model_info,
            "batching": {"max_batch_size": batcher.max_batch_size, "max_wait_ms": max_wait_ms, "max_queue": max_queue},
            "limits": dict(limits.as_dict(), request_timeout_s=request_timeout_s),
            "top_k": top_k if task == "text_classification" else None,
            "stats": batcher.stats(),
            "uptime_s": round(time.time() - started, 3),
            "pid": os.getpid(),
        }

    @app.post("/taskflow/{served}")
    async def predict(served: str, request: Request) -> JSONResponse:
        if served != name:
            return _error(404, f"unknown model {served!r}; this server serves {name!r} at POST {route}")
        incoming[0] += 1
        try:
            try:
                parsed = parse_request(await _read_body(request, limits.max_request_bytes), task, limits)
            except RequestError as err:
                return _error(err.status, err.message)
            new = set(parsed.ignored) - ignored_logged
            if new:
                ignored_logged.update(new)
                logger.info("ignoring request parameter(s) %s (not used by %s)", sorted(new), task)
            try:
                future = batcher.submit(parsed.items)
            except (QueueFull, BatcherClosed) as err:
                return _error(503, str(err))
        finally:
            incoming[0] -= 1
        try:
            results = await asyncio.wait_for(asyncio.wrap_future(future), timeout=request_timeout_s)
        except asyncio.TimeoutError:
            return _error(504, f"no answer within {request_timeout_s} s (--request_timeout_s)")
        except BatcherClosed as err:
            return _error(503, str(err))
        except Exception as err:  # noqa: BLE001 - the model failed on this request
            logger.warning("prediction failed: %r", err)
            return _error(500, f"prediction failed: {type(err).__name__}: {err}")
        if task == "text_classification":
            results = _keep_top_k(results, parsed.parameters.get("top_k", top_k))
        try:
            return JSONResponse({"result": results})
        except ValueError as err:  # e.g. a NaN score of a broken model
            return _error(500, f"the result cannot be written as JSON: {err}")

    return app


def build_app(config: ServeConfig, predictor: Any = None) -> FastAPI:
    """The app of ``config`` (the predictor loaded by :func:`load_predictor` unless given)."""
    predictor = predictor if predictor is not None else load_predictor(config)
    return create_app(
        predictor,
        name=config.name,
        max_batch_size=config.max_batch_size,
        max_wait_ms=config.max_wait_ms,
        max_queue=config.max_queue,
        limits=Limits(config.max_request_bytes, config.max_items, config.max_text_chars),
        top_k=config.top_k,
        request_timeout_s=config.request_timeout_s,
    )


def app_from_env() -> FastAPI:
    """The app of the ServeConfig in ``$PADDLE_BINBERT_SERVE_CONFIG`` (the uvicorn factory of each
    worker process when serving with ``--workers N``)."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise RuntimeError(f"${CONFIG_ENV} is not set; start the server with `paddle-binbert serve DIR`")
    return build_app(ServeConfig.from_json(text))
