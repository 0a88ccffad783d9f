"""Helpers shared by the length-adaptive tests: SST-2 and search-length
command lines, counting the evaluated configurations."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def sst2_args(glue_dir, out, *extra) -> list:
    """``--task_name SST-2 --data_dir GLUE_DIR --output_dir OUT`` followed by ``extra``."""
    return ["--task_name", "SST-2", "--data_dir", str(glue_dir), "--output_dir", str(out), *extra]


def quick_search(population_size: int, evo_iter: int) -> list:
    """search-length flags of a tiny evolutionary search (2 mutations and 2 crossovers per iteration,
    one latency run per configuration)."""
    sizes = ["--population_size", str(population_size), "--evo_iter", str(evo_iter)]
    return [*sizes, "--mutation_size", "2", "--crossover_size", "2", "--latency_repeats", "1"]


def record_evaluations(monkeypatch, evaluator_cls) -> list:
    """Wrap ``evaluator_cls.__call__`` so that every length configuration it scores is appended (as a
    tuple) to the returned list."""
    calls = []
    original = evaluator_cls.__call__

    def recording(self, config):
        calls.append(tuple(config))
        return original(self, config)

    monkeypatch.setattr(evaluator_cls, "__call__", recording)
    return calls
