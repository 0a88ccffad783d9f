"""benchmarks/bench_serve.py on a tiny packed model with a handful of requests: it starts the runtime
server, fires the requests at several client counts, writes the markdown table and stops the server."""

from tests.tiny import load_script


def test_bench_serve_tiny(cls_folder, tmp_path):
    bench = load_script("benchmarks/bench_serve.py", "bench_serve")
    out = tmp_path / "serve.md"
    argv = ["--model", str(cls_folder), "--work", str(tmp_path / "work"), "--requests", "10", "--warmup", "2"]
    argv += ["--concurrency", "1,4", "--words", "8", "--max_length", "32", "--threads", "1", "--out", str(out)]
    assert bench.main(argv) == 0
    text = out.read_text(encoding="utf-8")
    assert "| server | clients | requests | errors | throughput (req/s) | p50 (ms) | p99 (ms) | mean batch |" in text
    rows = [line for line in text.splitlines() if line.startswith("| **paddle-binbert serve**")]
    assert len(rows) == 2 and [r.split(" | ")[1:4] for r in rows] == [["1", "10", "0"], ["4", "10", "0"]]
    assert "2 layers x 48" in text
    assert (tmp_path / "work" / "runtime_server.log").is_file()


def test_bench_serve_with_paddlenlp_simple_server(cls_folder, tmp_path):
    """--paddlenlp: PaddleNLP's SimpleServer with an FP32 Taskflow of the same shape answers the same requests."""
    bench = load_script("benchmarks/bench_serve.py", "bench_serve")
    out = tmp_path / "serve.md"
    argv = ["--model", str(cls_folder), "--work", str(tmp_path / "work"), "--requests", "6", "--warmup", "1"]
    argv += ["--concurrency", "1,3", "--words", "8", "--max_length", "32", "--threads", "1", "--paddlenlp"]
    assert bench.main(argv + ["--out", str(out)]) == 0, out.read_text(encoding="utf-8")
    rows = [line for line in out.read_text(encoding="utf-8").splitlines() if line.startswith("| PaddleNLP")]
    assert [r.split(" | ")[1:4] for r in rows] == [["1", "6", "0"], ["3", "6", "0"]]


def test_percentiles_and_bodies():
    bench = load_script("benchmarks/bench_serve.py", "bench_serve")
    values = sorted(float(v) for v in range(1, 101))
    assert bench._percentile(values, 50) == 50.0 and bench._percentile(values, 99) == 99.0
    assert bench._percentile([3.0], 99) == 3.0 and bench._percentile([], 50) is None
    bodies = bench.make_bodies(3, 2, 5)
    assert bodies == bench.make_bodies(3, 2, 5) and len(set(bodies)) == 3
    import json

    texts = json.loads(bodies[0])["data"]["text"]
    assert len(texts) == 2 and all(len(t.split()) == 5 for t in texts)
