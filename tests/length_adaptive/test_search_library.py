"""The length search as a library: the evolutionary algorithm on a synthetic score (no model), the
same seed giving the same configurations, reports and pick, and the command line as a thin front end
over SearchSettings -> run_search."""

import json
from dataclasses import MISSING, fields

import numpy as np
import pytest

from paddle_binbert.length_adaptive import length_config_macs
from paddle_binbert.length_adaptive.search import (
    DevSetConfig,
    EvolutionConfig,
    SearchSettings,
    build_parser,
    evolutionary_search,
    main,
    run_search,
)
from paddle_binbert.length_adaptive.search import run as search_run
from paddle_binbert.length_adaptive.search.cli import SearchArguments, settings_from_args, validate_args

from .helpers import quick_search, sst2_args

SEQ, LAYERS = 32, 4


def macs(config):
    return length_config_macs(config, SEQ, 32, 64)


def synthetic_record(config):
    """A score that grows with the kept tokens, with a kink so that the front is not trivial."""
    kept = np.array(config, dtype=float)
    score = float(np.sqrt(kept).sum() - 0.3 * (kept[1] % 5))
    return {"config": list(config), "score": score, "macs": macs(config), "latency_ms": macs(config) / 1e5}


def run_synthetic(seed, **settings):
    calls = []

    def evaluate(config):
        calls.append(config)
        return synthetic_record(config)

    config = EvolutionConfig(population_size=6, evo_iter=4, mutation_size=3, crossover_size=3, seed=seed, **settings)
    records = evolutionary_search(evaluate, macs, SEQ, LAYERS, config)
    return calls, records


def test_evolution_on_a_synthetic_score_is_seeded_and_valid():
    calls, records = run_synthetic(seed=3, min_cost_ratio=0.2, max_cost_ratio=0.8)
    assert calls == run_synthetic(seed=3, min_cost_ratio=0.2, max_cost_ratio=0.8)[0]  # same seed, same candidates
    assert calls != run_synthetic(seed=4, min_cost_ratio=0.2, max_cost_ratio=0.8)[0]
    assert calls[0] == (SEQ,) * LAYERS and [tuple(r["config"]) for r in records] == calls
    assert len(set(calls)) == len(calls) <= 1 + 6 + 4 * (3 + 3)
    full_macs = macs((SEQ,) * LAYERS)
    for config in calls[1:]:
        assert all(a >= b >= 2 for a, b in zip((SEQ,) + config, config))  # non-increasing, >= min_length
        assert 0.2 * full_macs <= macs(config) <= 0.8 * full_macs
    assert len(calls) > 7  # the iterations added children to the initial population


def test_cost_decides_the_parents():
    """With latency as cost the Pareto front, hence the children, follow the latency field."""
    by_macs = run_synthetic(seed=1)[0]

    def evaluate(config):
        record = synthetic_record(config)
        record["latency_ms"] = float(len(calls))  # unrelated to MACs
        calls.append(config)
        return record

    calls = []
    evolutionary_search(evaluate, macs, SEQ, LAYERS, EvolutionConfig(6, 4, 3, 3, seed=1, cost="latency"), progress=None)
    assert calls[:7] == by_macs[:7]  # the initial population does not depend on the cost
    assert calls != by_macs


def test_parser_flags_are_the_settings_fields():
    """Every search-length flag is a field of SearchSettings / DevSetConfig / EvolutionConfig with the
    same default, and every field is a flag."""
    parser = build_parser()
    flags = {a.dest: a for a in parser._actions if a.dest != "help"}
    names = {}
    for cls in (SearchSettings, DevSetConfig, EvolutionConfig):
        names.update({f.name: f.default for f in fields(cls) if f.name not in ("dev", "evolution")})
    assert set(flags) == set(names)
    for name, default in names.items():
        assert flags[name].required if default is MISSING else flags[name].default == default, name


def _argv(checkpoint, glue_dir, out, *extra):
    return ["--checkpoint", str(checkpoint), *sst2_args(glue_dir, out, "--max_seq_length", "24", *extra)]


@pytest.fixture
def fixed_latency(monkeypatch):
    """Latency = MACs / 1e5 ms: the reports of a run no longer depend on the machine's timing."""

    def latency(model, config, seq_length, batch_size=1, repeats=10, warmup=2, seed=0):
        return search_run.model_macs(model, config, seq_length) / 1e5

    monkeypatch.setattr(search_run, "measure_latency", latency)


REPORTS = ("search_cache.json", "all_configs.csv", "pareto.csv", "pareto.md", "pareto.png", "pick.json")


def test_same_seed_same_configurations_reports_and_pick(tiny_la_checkpoint, glue_dir, tmp_path, fixed_latency):
    search = quick_search(population_size=4, evo_iter=2)
    outputs = {}
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        out = tmp_path / name
        assert main(_argv(tiny_la_checkpoint, glue_dir, out, *search, "--seed", seed)) == 0
        files = {f: (out / f).read_bytes() for f in REPORTS}
        files["pick.json"] = files["pick.json"].replace(str(out).encode(), b"OUT")
        files["search_cache.json"] = json.loads(files["search_cache.json"])["entries"]  # meta: the same either way
        outputs[name] = files
    assert outputs["a"] == outputs["b"]
    assert list(outputs["a"]["search_cache.json"]) == list(outputs["b"]["search_cache.json"])  # evaluation order
    assert list(outputs["a"]["search_cache.json"]) != list(outputs["c"]["search_cache.json"])


def test_run_search_as_a_library_matches_the_command_line(tiny_la_checkpoint, glue_dir, tmp_path, fixed_latency):
    argv = _argv(tiny_la_checkpoint, glue_dir, tmp_path / "cli", *quick_search(population_size=3, evo_iter=1))
    assert main(argv) == 0
    settings = SearchSettings(
        checkpoint=str(tiny_la_checkpoint),
        output_dir=str(tmp_path / "lib"),
        dev=DevSetConfig("SST-2", data_dir=str(glue_dir), max_seq_length=24),
        evolution=EvolutionConfig(population_size=3, evo_iter=1, mutation_size=2, crossover_size=2),
        latency_repeats=1,
    )
    assert settings.tolerance == 0.01  # the GLUE default ("within 1 point")
    result = run_search(settings)
    assert result.speed_table is None and result.summary["cache_hits"] == 0
    cli_pick = json.loads((tmp_path / "cli" / "pick.json").read_text())
    lib_pick = json.loads((tmp_path / "lib" / "pick.json").read_text())
    assert {k: v for k, v in lib_pick.items() if k != "plot"} == {k: v for k, v in cli_pick.items() if k != "plot"}
    # the flags map onto the same settings
    parser = build_parser()
    args = SearchArguments.from_flags(vars(parser.parse_args(argv)))
    validate_args(args)
    mapped = settings_from_args(args)
    assert mapped.dev == settings.dev and mapped.evolution == settings.evolution
    assert mapped.tolerance == settings.tolerance and mapped.output_dir == str(tmp_path / "cli")


def test_settings_defaults_follow_the_task():
    squad = SearchSettings("ckpt", "out", DevSetConfig("squad", predict_file="dev.json"))
    assert squad.dev.max_seq_length == 384 and squad.tolerance == 1.0
    glue = SearchSettings("ckpt", "out", DevSetConfig("SST-2", data_dir="d"), length_config="12, 6")
    assert glue.dev.max_seq_length == 128 and glue.tolerance == 0.01 and glue.length_config == (12, 6)
