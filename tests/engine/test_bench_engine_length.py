"""benchmarks/bench_engine_length.py: the stretched budgets and one tiny end-to-end run."""

import pytest

from tests.tiny import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/bench_engine_length.py", "bench_engine_length")


def test_stretch_keeps_fractions_and_order(bench):
    fractions = bench.PROFILES["SST-2 pick profile"]
    assert bench.stretch(fractions, 6, 64) == (30, 18, 9, 6, 6, 6)  # the SST-2 pick itself
    twelve = bench.stretch(fractions, 12, 128)
    assert len(twelve) == 12 and twelve[0] == 60 and twelve[-1] == 12
    assert all(a >= b for a, b in zip(twelve, twelve[1:]))
    assert bench.stretch([0.001], 3, 16) == (1, 1, 1)  # at least one token per layer


def test_tiny_run_writes_the_table(bench, ops, tmp_path):
    out = tmp_path / "engine_length.md"
    assert (
        bench.main(
            [
                "--threads",
                "1",
                "--models",
                "tiny",
                "--presets",
                "bibert",
                "--batches",
                "2",
                "--seq_length",
                "32",
                "--rounds",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = [line for line in out.read_text().splitlines() if line.startswith("| tiny |")]
    assert len(rows) == len(bench.PROFILES)
    assert "`15-3`" in rows[0]  # 30/64 and 6/64 of 32 tokens on 2 layers
