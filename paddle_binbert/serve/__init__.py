"""An HTTP server for packed 1-bit folders, speaking PaddleNLP SimpleServer's Taskflow protocol.

    paddle-binbert serve sst2_bibert_packed --port 8189

or from Python::

    import uvicorn
    from paddle_binbert.serve import ServeConfig, build_app
    uvicorn.run(build_app(ServeConfig(path="sst2_bibert_packed")), port=8189)

``POST /taskflow/<name>`` with ``{"data": {"text": [...]}, "parameters": {...}}`` answers
``{"result": [...]}`` in Taskflow's format; ``GET /health`` describes the model. The inputs of
concurrent requests are batched (:class:`Batcher`). Runs on :class:`paddle_binbert.runtime.Predictor`:
importing this package imports neither Paddle nor PaddleNLP (FastAPI and uvicorn are needed:
``pip install -e .[runtime]``).
"""

from __future__ import annotations

from .app import CONFIG_ENV, ServeConfig, app_from_env, build_app, create_app, load_predictor
from .batcher import Batcher, BatcherClosed, QueueFull
from .protocol import Limits, ParsedRequest, RequestError, parse_request

__all__ = [
    "CONFIG_ENV",
    "Batcher",
    "BatcherClosed",
    "Limits",
    "ParsedRequest",
    "QueueFull",
    "RequestError",
    "ServeConfig",
    "app_from_env",
    "build_app",
    "create_app",
    "load_predictor",
    "parse_request",
]
