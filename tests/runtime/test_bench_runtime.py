"""benchmarks/bench_runtime.py: the fresh-process worker on a tiny packed model, and the report."""

import pytest
from paddlenlp.transformers import BertForSequenceClassification, BertTokenizer

from paddle_binbert.checkpoints import minilm_source_dir
from paddle_binbert.export import pack_model
from tests.engine import make_student, tiny_config
from tests.tiny import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/bench_runtime.py", "bench_runtime")


def test_workers_and_report(bench, lib, ops, tmp_path):
    tokenizer = BertTokenizer.from_pretrained(str(minilm_source_dir()))
    student = make_student("bibert", BertForSequenceClassification, config=tiny_config(vocab=len(tokenizer.vocab)))
    packed = pack_model(student, tmp_path / "packed", tokenizer=tokenizer)
    runs = {}
    for backend in ("python-numpy", "runtime", "runtime-predictor", "engine"):
        row = bench.run_worker(backend, packed, threads=1, reps=3)
        assert row["peak_rss_mib"] > 10 and row["import_s"] >= 0 and row["load_s"] >= 0
        if backend != "python-numpy":
            assert row["latency_ms"] > 0
            assert (row["modules"] != []) == (backend == "engine")  # only the engine imports Paddle
        runs[backend] = [row]
    # ru_maxrss is inherited from this (large, Paddle-holding) test process over fork + exec, which is
    # why the benchmark starts its workers from a small process; VmHWM is the worker's own
    assert runs["runtime"][0]["vmhwm_mib"] < runs["engine"][0]["vmhwm_mib"]
    meta = dict(threads=1, runs=1, reps=3, cpu="cpu", cpus=2, python="3", load_before="0", load_after="0")
    meta.update(packed_mib=0.1, threads_note="note")
    text = bench.render({"meta": meta, "build": {"runtime_first_build_s": 1.0}, "runs": runs})
    assert "| **runtime** (`runtime.load`) |" in text and "peak RSS <= 100 MiB" in text
    assert text.count("\n| ") >= 8
