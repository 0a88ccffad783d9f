"""Load test of ``paddle-binbert serve`` (and, with ``--paddlenlp``, of PaddleNLP's SimpleServer).

Starts the server in a subprocess on 127.0.0.1 (a free port), waits for ``GET /health``, sends a few
warm-up requests, then for each client count in ``--concurrency`` (default 1, 8, 32) fires
``--requests`` requests (each ``{"data": {"text": [...]}}`` with ``--texts_per_request`` texts of
``--words`` words) from that many client threads, each on its own keep-alive HTTP connection, and
measures throughput (answered requests per second of wall time) and the p50 / p99 latency of a
request (send to last byte). For the runtime server it also reports the mean number of texts per
model call (from ``/health``), i.e. how much dynamic batching happened. Then it stops the server.

``--paddlenlp`` adds PaddleNLP 2.8's SimpleServer (``register_taskflow("taskflow/text_classification",
Taskflow("text_classification", task_path=...))``: Paddle Inference FP32, one request at a time under
a lock) on an FP32 ``BertForSequenceClassification`` of the same shape with random weights, built into
``--work``; the clients send it the very same requests.

The model: ``--model DIR`` (a packed classification folder), else the BERT-base-shaped random BiBERT
student of ``bench_runtime.py`` (built once into ``--work``; needs Paddle for that step).

    python benchmarks/bench_serve.py [--model DIR] [--requests 256] [--concurrency 1,8,32] \\
        [--threads 2] [--max_batch_size 32] [--max_wait_ms 5] [--paddlenlp] [--out FILE]

Writes a markdown table to ``--out`` (default ``benchmarks/results/serve.md``) and prints it.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from paddle_binbert.machine import cpu_name, load_average  # Paddle-free

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "serve.md"
DEFAULT_WORK = Path(tempfile.gettempdir()) / "paddle_binbert_bench_serve"
ROUTE = "/taskflow/text_classification"
WORDS = (
    "the a film movie story actor plot scene music good bad great awful long short funny boring moving "
    "dull bright dark slow fast simple clever charming tired fresh old new world life love time day night "
    "city river house people man woman child family friend work play end beginning year way thing"
).split()

PADDLENLP_SERVER = r"""
import os
import sys
import paddle
import uvicorn
from paddlenlp import SimpleServer, Taskflow

# PaddleNLP 2.8's Taskflow asks Paddle Inference for "<prefix>.pdmodel", but Paddle 3 (PIR) saves the
# program it exported as "<prefix>.json": hand Paddle Inference the file that exists.
_Config = paddle.inference.Config


def _config(*args):
    if len(args) == 2 and str(args[0]).endswith(".pdmodel") and not os.path.exists(args[0]):
        program = str(args[0])[: -len(".pdmodel")] + ".json"
        if os.path.exists(program):
            args = (program, args[1])
    return _Config(*args)


paddle.inference.Config = _config
# and its memory_optimize_pass fails under PIR ("Not find predictor_id 0 and pass_name memory_optimize_pass"):
# leave it out, as benchmarks/bench_inference.py's Paddle Inference FP32 configuration does
_Config.enable_memory_optim = lambda self, *args: None

path, host, port, threads, batch_size, max_length = sys.argv[1:7]
flow = Taskflow("text_classification", task_path=path, batch_size=int(batch_size), max_length=int(max_length),
                num_threads=int(threads))


# PaddleNLP's TaskflowHandler (predict on data["text"]), with the numpy scalars of the Taskflow's
# results made plain Python numbers: pydantic 2 cannot write numpy.float32 / int64 (a 500 otherwise).
class Handler:

    @classmethod
    def process(cls, predictor, data, parameters):
        if not isinstance(data, dict) or "text" not in data:
            return {}
        return plain(predictor(data["text"]))


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value.item() if hasattr(value, "item") else value


app = SimpleServer()
app.register_taskflow("taskflow/text_classification", flow, taskflow_handler=Handler)
uvicorn.run(app, host=host, port=int(port), log_level="warning")
"""

PADDLENLP_MODEL = r"""
import json, shutil, sys
from pathlib import Path
import paddle
from paddlenlp.transformers import BertConfig, BertForSequenceClassification

packed, out = Path(sys.argv[1]), Path(sys.argv[2])
meta = json.loads((packed / "config.json").read_text(encoding="utf-8"))
keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "max_position_embeddings", "type_vocab_size", "num_labels", "hidden_act", "pad_token_id")
paddle.seed(0)
model = BertForSequenceClassification(BertConfig(**{k: meta[k] for k in keys if k in meta}))
model.eval()
out.mkdir(parents=True, exist_ok=True)
model.save_pretrained(str(out))
for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
    if (packed / name).is_file():
        shutil.copy(packed / name, out / name)
print(json.dumps(str(out)))
"""


# ---------------------------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------------------------
def _env() -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A server subprocess (own session, so that its workers stop with it) and its log file."""

    def __init__(self, cmd: Sequence[str], port: int, log: Path, start_timeout: float = 600.0) -> None:
        self.port = port
        self.log_path = log
        self._log = open(log, "w")
        self.proc = subprocess.Popen(
            list(cmd), stdout=self._log, stderr=subprocess.STDOUT, env=_env(), cwd=str(ROOT), start_new_session=True
        )
        deadline = time.monotonic() + start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}; log:\n{self.tail()}")
            try:
                status, _ = request(port, "GET", "/health", None, timeout=5)
                if status in (200, 404):  # PaddleNLP's server has no /health: any answer means it is up
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not answer within {start_timeout:.0f} s; log:\n{self.tail()}")
            time.sleep(0.25)

    def tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def start_runtime_server(model: Path, args: argparse.Namespace, log_dir: Path) -> ServerProcess:
    port = free_port()
    cmd = [sys.executable, "-m", "paddle_binbert.cli", "serve", str(model), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", str(args.workers), "--num_threads", str(args.threads)]
    cmd += ["--max_batch_size", str(args.max_batch_size), "--max_wait_ms", str(args.max_wait_ms)]
    cmd += ["--max_length", str(args.max_length), "--log_level", "warning"]
    return ServerProcess(cmd, port, log_dir / "runtime_server.log")


def start_paddlenlp_server(fp32_dir: Path, args: argparse.Namespace, log_dir: Path) -> ServerProcess:
    port = free_port()
    cmd = [sys.executable, "-c", PADDLENLP_SERVER, str(fp32_dir), "127.0.0.1", str(port), str(args.threads)]
    cmd += [str(args.max_batch_size), str(args.max_length)]
    return ServerProcess(cmd, port, log_dir / "paddlenlp_server.log")


def _run_json(cmd: Sequence[str]) -> Any:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env=_env(), cwd=str(ROOT), timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare_model(work: Path) -> Path:
    """The BERT-base-shaped packed BiBERT student of bench_runtime.py (built once, in a subprocess)."""
    script = str(ROOT / "benchmarks" / "bench_runtime.py")
    return Path(_run_json([sys.executable, script, "--stage", "prepare", "--work", str(work)]))


def prepare_fp32(packed: Path, work: Path) -> Path:
    """An FP32 PaddleNLP folder of the packed model's shape (random weights, same tokenizer files)."""
    digest = hashlib.sha256((packed / "config.json").read_bytes()).hexdigest()[:10]
    out = work / f"fp32_{packed.name}_{digest}"  # rebuilt when the packed model's config changes
    if (out / "config.json").is_file() and (out / "vocab.txt").is_file():
        return out
    if out.exists():
        shutil.rmtree(out)
    return Path(_run_json([sys.executable, "-c", PADDLENLP_MODEL, str(packed), str(out)]))


# ---------------------------------------------------------------------------------------------
# clients
# ---------------------------------------------------------------------------------------------
def request(
    port: int,
    method: str,
    path: str,
    body: Optional[bytes],
    timeout: float = 120.0,
    conn: Optional[http.client.HTTPConnection] = None,
) -> tuple:
    """(status, parsed JSON body) of one request (on ``conn`` when given, else a fresh connection)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, data.decode(errors="replace")
    finally:
        if own:
            conn.close()


def make_bodies(count: int, texts_per_request: int, words: int, seed: int = 0) -> List[bytes]:
    """``count`` request bodies, PaddleNLP's client shape, with distinct random texts."""
    rng = random.Random(seed)
    bodies = []
    for _ in range(count):
        texts = [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(texts_per_request)]
        bodies.append(json.dumps({"data": {"text": texts}}).encode())
    return bodies


def fire(port: int, bodies: Sequence[bytes], clients: int, expect: int) -> Dict[str, Any]:
    """Send ``bodies`` from ``clients`` threads (each its own keep-alive connection); latencies in ms."""
    lock = threading.Lock()
    next_index = [0]
    latencies: List[float] = []
    errors: List[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            while True:
                with lock:
                    i = next_index[0]
                    next_index[0] += 1
                if i >= len(bodies):
                    return
                start = time.perf_counter()
                try:
                    status, payload = request(port, "POST", ROUTE, bodies[i], conn=conn)
                except (OSError, http.client.HTTPException) as err:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                    status, payload = -1, repr(err)
                elapsed = 1e3 * (time.perf_counter() - start)
                ok = status == 200 and isinstance(payload, dict) and len(payload.get("result") or []) == expect
                with lock:
                    if ok:
                        latencies.append(elapsed)
                    else:
                        errors.append(f"{status}: {str(payload)[:200]}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(max(1, min(clients, len(bodies))))]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "requests": len(bodies),
        "ok": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "wall_s": wall,
        "throughput_rps": len(latencies) / wall if wall > 0 else 0.0,
        "p50_ms": _percentile(ordered, 50),
        "p99_ms": _percentile(ordered, 99),
        "mean_ms": statistics.fmean(ordered) if ordered else None,
    }


def _percentile(ordered: Sequence[float], q: float) -> Optional[float]:
    """The q-th percentile (nearest rank) of sorted values."""
    if not ordered:
        return None
    rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil(q / 100 * n)
    return ordered[min(rank, len(ordered)) - 1]


def _batch_stats(port: int) -> Optional[Dict[str, Any]]:
    try:
        status, payload = request(port, "GET", "/health", None, timeout=10)
    except OSError:
        return None
    return payload.get("stats") if status == 200 and isinstance(payload, dict) else None


def bench_server(server: ServerProcess, name: str, args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Warm up, then one run per client count; rows of the table."""
    fire(server.port, make_bodies(args.warmup, args.texts_per_request, args.words, seed=99), 1, args.texts_per_request)
    rows = []
    for level, clients in enumerate(args.concurrency):
        bodies = make_bodies(args.requests, args.texts_per_request, args.words, seed=level)
        before = _batch_stats(server.port)
        row = fire(server.port, bodies, clients, args.texts_per_request)
        after = _batch_stats(server.port)
        if before and after and after["batches"] > before["batches"]:
            row["mean_batch"] = (after["items"] - before["items"]) / (after["batches"] - before["batches"])
        row["server"] = name
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def _fmt(value: Optional[float], digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(results: Dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        "# `paddle-binbert serve` under load",
        "",
        f"`python benchmarks/bench_serve.py {meta['argv']}` on {meta['cpu']} ({meta['cpus']} CPUs), Python "
        f"{meta['python']}; load average before {meta['load_before']}, after {meta['load_after']}.",
        "",
        f'Model: {meta["model_desc"]}. Each request: PaddleNLP\'s client shape `{{"data": {{"text": [...]}}}}` '
        f"with {meta['texts_per_request']} text(s) of {meta['words']} words (at most {meta['max_length']} tokens); "
        f"{meta['requests']} requests per row after {meta['warmup']} warm-up requests, from N client threads on "
        f"keep-alive connections. Runtime server: {meta['workers']} worker(s), {meta['threads']} kernel threads, "
        f"`--max_batch_size {meta['max_batch_size']} --max_wait_ms {meta['max_wait_ms']}`. Throughput = answered "
        "requests / wall time; latency = one request, send to last byte (nearest-rank percentiles); mean batch = "
        "texts per model call on the server (from `/health`).",
        "",
        "| server | clients | requests | errors | throughput (req/s) | p50 (ms) | p99 (ms) | mean batch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['server']} | {row['clients']} | {row['requests']} | {row['errors']} | "
            f"{_fmt(row['throughput_rps'])} | {_fmt(row['p50_ms'])} | {_fmt(row['p99_ms'])} | "
            f"{_fmt(row.get('mean_batch'), 2)} |"
        )
    notes = [row for row in results["rows"] if row.get("first_error")]
    if notes:
        lines += [
            "",
            "First error per row: " + "; ".join(f"{r['server']} x{r['clients']}: {r['first_error']}" for r in notes),
        ]
    lines.append("")
    return "\n".join(lines)


def _model_desc(path: Path) -> str:
    meta = json.loads((path / "config.json").read_text(encoding="utf-8")).get("binbert_packed", {})
    return (
        f"packed {meta.get('preset', '?')} classifier `{path.name}`, {meta.get('num_layers')} layers x "
        f"{meta.get('hidden_size')}, FFN {meta.get('intermediate_size')}, vocab {meta.get('vocab_size')}, "
        f"{meta.get('num_labels')} labels"
    )


def _int_list(text: str) -> List[int]:
    values = [int(v) for v in text.replace(" ", "").split(",") if v]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="packed classification folder (default: BERT-base)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="folder for built models and server logs")
    parser.add_argument("--requests", type=int, default=256, help="requests per client count (default 256)")
    parser.add_argument("--concurrency", type=_int_list, default=[1, 8, 32], help="client counts (default 1,8,32)")
    parser.add_argument("--warmup", type=int, default=8, help="warm-up requests (default 8)")
    parser.add_argument("--texts_per_request", type=int, default=1, help="texts per request (default 1)")
    parser.add_argument("--words", type=int, default=60, help="words per text (default 60)")
    parser.add_argument("--max_length", type=int, default=128, help="tokens per text (default 128)")
    parser.add_argument("--threads", type=int, default=2, help="kernel threads of the server (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="runtime server processes (default 1)")
    parser.add_argument("--max_batch_size", type=int, default=32, help="runtime server --max_batch_size")
    parser.add_argument("--max_wait_ms", type=float, default=5.0, help="runtime server --max_wait_ms")
    parser.add_argument("--paddlenlp", action="store_true", help="also PaddleNLP SimpleServer + FP32 Taskflow")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown output")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.texts_per_request < 1 or args.words < 1 or args.warmup < 0:
        parser.error("--requests, --texts_per_request and --words must be >= 1, --warmup >= 0")

    args.work.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    model = args.model if args.model is not None else prepare_model(args.work)
    rows: List[Dict[str, Any]] = []
    server = start_runtime_server(model, args, args.work)
    try:
        rows += bench_server(server, "**paddle-binbert serve** (runtime, 1-bit)", args)
    finally:
        server.stop()
    if args.paddlenlp:
        fp32 = prepare_fp32(model, args.work)
        server = start_paddlenlp_server(fp32, args, args.work)
        try:
            rows += bench_server(server, "PaddleNLP SimpleServer (Taskflow FP32)", args)
        finally:
            server.stop()
    meta = {
        "argv": " ".join(argv if argv is not None else sys.argv[1:]),
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": load_before,
        "load_after": load_average(),
        "model_desc": _model_desc(model),
        **{k: getattr(args, k) for k in ("texts_per_request", "words", "max_length", "requests", "warmup")},
        **{k: getattr(args, k) for k in ("workers", "threads", "max_batch_size", "max_wait_ms")},
    }
    text = render({"meta": meta, "rows": rows})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(row["errors"] == 0 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
