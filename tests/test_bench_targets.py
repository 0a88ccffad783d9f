"""benchmarks/bench_inference.py: issue 26's targets graded from a run's numbers (no timing here)."""

from tests.tiny import load_script


def _results(head_median, ceiling_ratio, runs):
    return {
        "meta": {"threads": 2},
        "kernel": {},
        "models": {
            "bert-base": {
                "runs": runs,
                "files": {},
                "headline": {"median_ms": head_median, "ceiling_ratio": ceiling_ratio},
            },
            "minilm-l6": {
                "runs": {},
                "files": {},
                "headline": {
                    "median_ms": {
                        "paddle-inference-fp32": 24.0,
                        "ort-int8": 7.5,
                        "engine-bibert": 3.0,
                        "runtime-bibert": 2.0,
                    }
                },
            },
        },
    }


def _timing(b1, b32):
    return {"timings": {"1x128": {"median_ms": b1}, "32x128": {"median_ms": b32}}}


def test_engine_and_runtime_are_graded_separately_from_the_round_robin():
    bench = load_script("benchmarks/bench_inference.py", "bench_inference")
    head = {
        "paddle-inference-fp32": 140.0,
        "ort-int8": 45.0,
        "engine-bibert": 9.0,
        "runtime-bibert": 7.0,
        "ceiling": 5.0,
    }
    runs = {"engine-bibert": _timing(10.0, 32 * 6.0), "runtime-bibert": _timing(8.0, 32 * 7.9)}
    rows = {
        r[0]: (r[1], r[2]) for r in bench.targets(_results(head, {"engine-bibert": 1.8, "runtime-bibert": 1.4}, runs))
    }

    def row(*words):
        (hit,) = [v for k, v in rows.items() if all(w in k for w in words)]
        return hit

    assert row("engine >= 14x", "round-robin") == ("15.6x", "yes")
    assert row("runtime (no Paddle) >= 14x") == ("20.0x", "yes")
    assert row("engine >= 5x") == ("5.0x", "yes")
    assert row("runtime (no Paddle) >= 5x") == ("6.4x", "yes")
    # the same-round ratio, not the ratio of the medians, decides
    assert row("engine <= 1.5x")[1] == "no" and row("engine <= 1.5x")[0].startswith("1.80x")
    assert row("runtime (no Paddle) <= 1.5x")[1] == "yes"
    # batch 32 from each backend's own sequential calls
    assert row("engine batch 32") == ("0.60x (6.00 / 10.00 ms)", "yes")
    assert row("runtime (no Paddle) batch 32")[1] == "no"
    assert row("minilm-l6", "engine >= 3x") == ("2.5x", "no")
    assert row("minilm-l6", "runtime (no Paddle) >= 3x") == ("3.8x", "yes")


def test_a_backend_missing_from_the_run_gets_no_rows():
    bench = load_script("benchmarks/bench_inference.py", "bench_inference")
    head = {"paddle-inference-fp32": 140.0, "ort-int8": 45.0, "engine-bibert": 9.0, "ceiling": 5.0}
    results = _results(head, {"engine-bibert": 1.8}, {"engine-bibert": _timing(10.0, 320.0)})
    results["models"]["minilm-l6"]["headline"]["median_ms"].pop("runtime-bibert")
    labels = [r[0] for r in bench.targets(results)]
    assert labels and not any("runtime" in label for label in labels)
    assert any("engine >= 14x" in label for label in labels)
