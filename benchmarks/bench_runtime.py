"""paddle_binbert.runtime (no Paddle) against the Paddle engine on a BERT-base-shaped packed model.

Measures, each in a fresh subprocess (repeated ``--runs`` times, median reported):

- import time (``from paddle_binbert import runtime``; for the engine ``import paddle`` +
  ``from paddle_binbert import engine``), load time (``runtime.load(dir)`` / ``engine.load(dir,
  backend="native")``: reading and validating the packed file, weight panels, library / operators
  already compiled and cached), and their sum;
- peak RSS of the process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) after loading and running
  the timed calls;
- median latency of ``model(input_ids, token_type_ids)`` at batch 1, length 128 (random ids);
- the same for ``runtime.Predictor`` (tokenizer included; one text of 128 tokens per call);
- a Python + numpy baseline (the RSS floor of any Python process using numpy);
- once: the first build of the runtime library into an empty cache (compile time).

The model: BERT-base shape (12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522, 512
positions), random weights, BiBERT preset, random biases, packed with FP32 islands and the uncased
MiniLM tokenizer files (same 30,522-token vocabulary). Built once into ``--work`` (Paddle needed
for that step only).

    python benchmarks/bench_runtime.py [--threads 2] [--runs 3] [--reps 30] [--work DIR]

Prints a markdown table and writes it to ``benchmarks/results/runtime.md`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from paddle_binbert.machine import cpu_name, load_average  # Paddle-free

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "runtime.md"
DEFAULT_WORK = Path(tempfile.gettempdir()) / "paddle_binbert_bench_runtime"
BERT_BASE = dict(
    vocab_size=30522,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    max_position_embeddings=512,
    num_labels=2,
)
SEQ_LEN = 128
TARGET_RSS_MIB = 100.0
TARGET_LOAD_S = 1.0

# ---------------------------------------------------------------------------------------------
# worker: one backend, one fresh process
# ---------------------------------------------------------------------------------------------
WORKER = r"""
import json, resource, statistics, sys, time
t0 = time.perf_counter()
backend, path, threads, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if backend == "python-numpy":
    import numpy as np
    t1 = time.perf_counter()
    model = None
elif backend in ("runtime", "runtime-predictor"):
    import numpy as np
    from paddle_binbert import runtime
    t1 = time.perf_counter()
    if backend == "runtime":
        model = runtime.load(path, num_threads=threads)
    else:
        model = runtime.Predictor(path, batch_size=1, max_length=512, num_threads=threads)
elif backend == "engine":
    import numpy as np
    import paddle
    from paddle_binbert import engine
    t1 = time.perf_counter()
    model = engine.load(path, num_threads=threads, backend="native")
else:
    raise SystemExit(f"unknown backend {backend}")
t2 = time.perf_counter()
out = {"backend": backend, "import_s": t1 - t0, "load_s": t2 - t1}
if model is not None:
    rng = np.random.default_rng(0)
    with open(f"{path}/config.json", encoding="utf-8") as fh:
        meta = json.load(fh)["binbert_packed"]
    seq = min(128, int(meta["max_position_embeddings"]))
    if backend == "runtime-predictor":
        text = " ".join(["word"] * (seq - 2))  # one WordPiece each in an uncased BERT vocabulary, + [CLS] [SEP]
        call = lambda: model(text)
    else:
        ids = rng.integers(1, int(meta["vocab_size"]), (1, seq)).astype("int64")
        types = np.zeros_like(ids)
        call = lambda: model(ids, types)
    for _ in range(3):
        call()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    out["latency_ms"] = 1e3 * statistics.median(times)
    out["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("paddle", "paddlenlp"))[:3]
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
with open("/proc/self/status") as fh:  # cross-check: the high-water mark of this process's memory map
    out["vmhwm_mib"] = next((int(l.split()[1]) / 1024.0 for l in fh if l.startswith("VmHWM:")), None)
print(json.dumps(out))
"""


def _env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra or {})
    return env


def run_worker(backend: str, path: Path, threads: int, reps: int, timeout: float = 1800) -> Dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, backend, str(path), str(threads), str(reps)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
        cwd=str(ROOT),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{backend} worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# preparation (Paddle): the packed BERT-base model, the cached builds
# ---------------------------------------------------------------------------------------------
def prepare(work: Path) -> Path:
    """The packed random BERT-base BiBERT student in ``work`` (built once)."""
    from paddle_binbert.export import is_packed_dir

    packed = work / "packed_bert_base_bibert"
    if is_packed_dir(packed) and (packed / "vocab.txt").is_file():
        return packed
    import numpy as np
    import paddle
    from paddlenlp.transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from paddle_binbert import quantize_model
    from paddle_binbert.checkpoints import minilm_source_dir
    from paddle_binbert.export import pack_model

    work.mkdir(parents=True, exist_ok=True)
    paddle.seed(0)
    student = BertForSequenceClassification(BertConfig(**BERT_BASE))
    quantize_model(student, "bibert")
    paddle.seed(2)
    for name, param in student.named_parameters():
        if name.endswith(".bias"):
            param.set_value(paddle.randn(param.shape) * 0.02)
    batch = paddle.to_tensor(np.random.default_rng(1).integers(1, 30522, (4, 32)), dtype="int64")
    student.train()
    with paddle.no_grad():
        student(batch)
    student.eval()
    tokenizer = BertTokenizer.from_pretrained(str(minilm_source_dir()))
    return pack_model(student, packed, tokenizer=tokenizer, overwrite=True)


def _stage(name: str, work: Path) -> Any:
    """Run a Paddle-heavy preparation stage in a subprocess and return its JSON answer.

    The orchestrating process must stay small: Linux carries a process's peak RSS (``ru_maxrss``)
    over ``fork`` + ``exec`` into the child, so a worker started by a process that once held the
    BERT-base student in Paddle (1.5 GB) would report that peak instead of its own.
    """
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--stage", name, "--work", str(work)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=3600,
        cwd=str(ROOT),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"stage {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_times() -> Dict[str, float]:
    """Build (or find) both cached libraries; time a first runtime build into an empty cache."""
    from paddle_binbert.engine import ops
    from paddle_binbert.runtime import library

    ops.load_ops()
    library.load_library()
    with tempfile.TemporaryDirectory(prefix="bench_runtime_cache_") as cache:
        code = "import time; t=time.perf_counter(); from paddle_binbert.runtime import library; "
        code += "library.load_library(); print(time.perf_counter()-t)"
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=_env({"PADDLE_BINBERT_CACHE": cache}),
            timeout=1800,
            cwd=str(ROOT),
        )
        if proc.returncode != 0:
            raise RuntimeError(f"runtime build failed:\n{proc.stderr[-3000:]}")
        return {
            "runtime_first_build_s": float(proc.stdout.strip().splitlines()[-1]),
            "wall_s": time.perf_counter() - start,
        }


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def _median(rows: List[Dict[str, Any]], key: str) -> Optional[float]:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def _fmt(v: Optional[float], digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def render(results: Dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        "# paddle_binbert.runtime vs the Paddle engine (BERT-base packed, BiBERT 1-1-1)",
        "",
        f"`python benchmarks/bench_runtime.py --threads {meta['threads']} --runs {meta['runs']} --reps {meta['reps']}`"
        f" on {meta['cpu']} ({meta['cpus']} CPUs), Python {meta['python']}; load average before the run "
        f"{meta['load_before']}, after {meta['load_after']} (the machine runs training jobs at the same time, "
        "so latencies are those of a shared machine).",
        "",
        f"Model: BERT-base shape (12 x 768, FFN 3072, vocab 30522, 512 positions), random weights, packed "
        f"{meta['packed_mib']:.2f} MiB (FP32 islands). Each cell: median over {meta['runs']} fresh processes; "
        "import = `from paddle_binbert import runtime` (engine: `import paddle` + `from paddle_binbert import "
        'engine`), load = `runtime.load(dir)` / `engine.load(dir, backend="native")` with the compiled library '
        "already cached; peak RSS = `ru_maxrss` after load and the timed calls (VmHWM of /proc/self/status "
        "as a cross-check); latency = median of "
        f"{meta['reps']} calls at batch 1, length {SEQ_LEN}, {meta['threads']} threads in each process: the median "
        "over the processes, and the best process (the least disturbed by the other jobs; backends run "
        "interleaved, one process at a time).",
        "",
        "| backend | import (s) | load (s) | import + load (s) | peak RSS (MiB) | VmHWM (MiB) | "
        "latency B=1 L=128 (ms), median / best process | paddle / paddlenlp imported |",
        "|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "python-numpy": "Python + numpy only (floor)",
        "runtime": "**runtime** (`runtime.load`)",
        "runtime-predictor": "runtime `Predictor` (tokenizer included, 1 text of 128 tokens)",
        "engine": "Paddle engine (`engine.load`)",
    }
    for backend, rows in results["runs"].items():
        imp, load = _median(rows, "import_s"), _median(rows, "load_s")
        total = _median([{"t": r["import_s"] + r["load_s"]} for r in rows], "t")
        modules = rows[0].get("modules")
        rss, hwm = _median(rows, "peak_rss_mib"), _median(rows, "vmhwm_mib")
        latency = _median(rows, "latency_ms")
        fastest = min((r["latency_ms"] for r in rows if r.get("latency_ms") is not None), default=None)
        imported = "-" if modules is None else ("yes" if modules else "no")
        timing = "-" if latency is None else f"{latency:.1f} / {fastest:.1f}"
        lines.append(
            f"| {labels[backend]} | {_fmt(imp)} | {_fmt(load)} | {_fmt(total)} | {_fmt(rss, 1)} | {_fmt(hwm, 1)} "
            f"| {timing} | {imported} |"
        )
    rt = results["runs"]["runtime"]
    rss = _median(rt, "peak_rss_mib")
    total = _median([{"t": r["import_s"] + r["load_s"]} for r in rt], "t")
    lines += [
        "",
        "| target (issue 26, runtime, BERT-base packed) | measured | met |",
        "|---|---|---|",
        f"| peak RSS <= {TARGET_RSS_MIB:.0f} MiB | {rss:.1f} MiB | {'yes' if rss <= TARGET_RSS_MIB else 'no'} |",
        f"| import + load <= {TARGET_LOAD_S:.0f} s | {total:.2f} s | {'yes' if total <= TARGET_LOAD_S else 'no'} |",
        "",
        f"First use only: compiling the runtime library into an empty cache took "
        f"{results['build']['runtime_first_build_s']:.1f} s (g++, {meta['threads_note']}).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="kernel threads (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per backend (default 3)")
    parser.add_argument("--reps", type=int, default=30, help="timed calls per process (default 30)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="folder of the packed model (reused)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown output")
    parser.add_argument("--stage", choices=["prepare", "build"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage == "prepare":
        print(json.dumps(str(prepare(args.work))))
        return 0
    if args.stage == "build":
        print(json.dumps(build_times()))
        return 0

    load_before = load_average()
    packed = Path(_stage("prepare", args.work))
    build = _stage("build", args.work)
    runs: Dict[str, List[Dict[str, Any]]] = {b: [] for b in ("python-numpy", "runtime", "runtime-predictor", "engine")}
    for _ in range(args.runs):  # interleaved, so that a change of machine load hits every backend alike
        for backend in runs:
            runs[backend].append(run_worker(backend, packed, args.threads, args.reps))
            print(json.dumps(runs[backend][-1]), flush=True)
    results = {
        "meta": {
            "threads": args.threads,
            "runs": args.runs,
            "reps": args.reps,
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": load_before,
            "load_after": load_average(),
            "packed_mib": (packed / "model.safetensors").stat().st_size / 2**20,
            "threads_note": "the compiler runs single-threaded",
        },
        "build": build,
        "runs": runs,
    }
    text = render(results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
