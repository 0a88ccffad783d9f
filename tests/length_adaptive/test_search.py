"""Search helpers (Pareto front, mutation, crossover, costs) and the resumable search command."""

import json

import numpy as np
import paddle
import pytest

from paddle_binbert.length_adaptive import length_config_macs
from paddle_binbert.length_adaptive.search import (
    GlueDevEvaluator,
    crossover,
    initial_population,
    main,
    mutate,
    pareto_front,
    pick_config,
)

from .helpers import quick_search, record_evaluations, sst2_args


def brute_force_front(costs, scores):
    n = len(costs)
    return sorted(
        i
        for i in range(n)
        if not any(
            costs[j] <= costs[i] and scores[j] >= scores[i] and (costs[j] < costs[i] or scores[j] > scores[i])
            for j in range(n)
        )
    )


@pytest.mark.parametrize("seed", range(8))
def test_pareto_front_is_the_non_dominated_set(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    costs = rng.integers(0, 15, n).tolist()  # small integers: many ties and duplicates
    scores = rng.integers(0, 15, n).tolist()
    assert sorted(pareto_front(costs, scores)) == brute_force_front(costs, scores)
    costs, scores = rng.random(n).tolist(), rng.random(n).tolist()
    front = pareto_front(costs, scores)
    assert sorted(front) == brute_force_front(costs, scores)
    assert [costs[i] for i in front] == sorted(costs[i] for i in front)


def test_mutation_and_crossover_stay_valid():
    rng = np.random.default_rng(0)
    config = (60, 50, 40, 30)
    for _ in range(500):
        child = mutate(config, 64, rng, 0.5, min_length=2)
        assert all(a >= b for a, b in zip((64,) + child, child + (2,)))
        config = child if rng.random() < 0.5 else config
    assert crossover((64, 50, 31), (40, 39, 30)) == (52, 45, 31)
    assert mutate((10, 8), 12, rng, prob=0.0) == (10, 8)


def test_macs_formula():
    h, f, n, layers = 32, 64, 20, 3
    per_layer = 4 * n * h * h + 2 * n * n * h + 2 * n * h * f
    assert length_config_macs(None, n, h, f, layers, 2) == layers * per_layer + h * h + 2 * h
    # layer 2 drops to 10: its attention still sees 20 tokens, its FFN 10; layer 3 sees 10
    want = per_layer + (4 * n * h * h + 2 * n * n * h + 2 * 10 * h * f)
    want += 4 * 10 * h * h + 2 * 100 * h + 2 * 10 * h * f
    assert length_config_macs((20, 10, 10), n, h, f) == want + h * h + 2 * h


def test_initial_population_spread_and_pick():
    rng = np.random.default_rng(0)

    def macs(c):
        return length_config_macs(c, 32, 32, 64)

    full = macs((32,) * 4)
    pop = initial_population(8, 32, 4, macs, (0.2 * full, 0.9 * full), rng)
    costs = sorted(macs(c) for c in pop)
    assert len(set(pop)) == 8 and all(0.2 * full <= c <= 0.9 * full for c in costs)
    assert costs[-1] - costs[0] > 0.4 * full  # spread over the range
    records = [
        {"config": [4], "score": 0.90, "macs": 10, "latency_ms": 1.0},
        {"config": [3], "score": 0.895, "macs": 8, "latency_ms": 0.9},
        {"config": [2], "score": 0.88, "macs": 5, "latency_ms": 0.5},
    ]
    assert pick_config(records, 0.90, 0.01)["config"] == [3]
    assert pick_config(records, 0.90, 0.05)["config"] == [2]


def _argv(checkpoint, glue_dir, out, *extra):
    """search-length on the SST-2 fixture with 24-token inputs."""
    return ["--checkpoint", str(checkpoint), *sst2_args(glue_dir, out, "--max_seq_length", "24", *extra)]


def test_search_resumes_from_its_cache(tiny_la_checkpoint, glue_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "search"
    argv = _argv(tiny_la_checkpoint, glue_dir, out, *quick_search(population_size=4, evo_iter=2))
    calls = record_evaluations(monkeypatch, GlueDevEvaluator)
    assert main(argv) == 0
    first = len(calls)
    assert first >= 5 and len(set(calls)) == first
    for name in ("pareto.csv", "pareto.md", "all_configs.csv", "pick.json", "search_cache.json", "pareto.png"):
        assert (out / name).is_file(), name
    pick = json.loads((out / "pick.json").read_text())
    cache = json.loads((out / "search_cache.json").read_text())
    assert len(cache["entries"]) == first and "24-24" in cache["entries"]
    assert pick["pick"]["score"] >= pick["full"]["score"] - 0.01

    # a complete rerun evaluates nothing; an interrupted one only what is missing
    assert main(argv) == 0 and len(calls) == first
    missing = sorted(cache["entries"])[:2]
    for key in missing:
        del cache["entries"][key]
    (out / "search_cache.json").write_text(json.dumps(cache))
    assert main(argv) == 0
    assert sorted("-".join(map(str, c)) for c in calls[first:]) == missing
    assert json.loads((out / "pick.json").read_text()) == pick

    # another setting refuses the cache instead of mixing scores
    other = list(argv)
    other[other.index("--max_seq_length") + 1] = "20"
    with pytest.raises(SystemExit):
        main(other)
    assert "written for another search" in capsys.readouterr().err


def test_measure_mode(tiny_la_checkpoint, glue_dir, tmp_path, capsys):
    out = tmp_path / "measure"
    argv = _argv(tiny_la_checkpoint, glue_dir, out, "--measure", "--length_config", "12,6", "--measure_examples", "8")
    assert main(argv) == 0
    table = (out / "speed.md").read_text()
    assert "| 1 |" in table and "| 32 |" in table and "12-6" in table
    with pytest.raises(SystemExit):
        main(argv[:-4] + ["--length_config", "6,12"])
    assert "non-increasing" in capsys.readouterr().err


def test_measure_engine_backend_times_the_packed_student(tiny_la_checkpoint, glue_dir, tmp_path, monkeypatch, capsys):
    """--measure_backend engine packs the BiT student and every timed pass goes through the engine."""
    from paddlenlp.transformers import BertTokenizer

    from paddle_binbert import quantize_model
    from paddle_binbert.checkpoints import load_model
    from paddle_binbert.engine.simulated import SimulatedBertEngine

    student_dir = tmp_path / "bit_student"
    student = quantize_model(load_model(str(tiny_la_checkpoint)), "bit")
    student(paddle.randint(1, 50, [2, 10]))  # BiT's elastic scales are set from a first batch
    student.save_pretrained(str(student_dir))
    BertTokenizer.from_pretrained(str(tiny_la_checkpoint)).save_pretrained(str(student_dir))
    monkeypatch.setenv("PADDLE_BINBERT_ENGINE", "simulated")  # the same code path without compiling
    configs = []
    original = SimulatedBertEngine.forward

    def spy(self, ids, types=None, mask=None, length_config=None):
        configs.append(None if length_config is None else tuple(length_config))
        return original(self, ids, types, mask, length_config=length_config)

    monkeypatch.setattr(SimulatedBertEngine, "forward", spy)
    out = tmp_path / "measure_engine"
    argv = _argv(student_dir, glue_dir, out, "--measure", "--length_config", "12,6", "--measure_examples", "8")
    assert main(argv + ["--measure_backend", "engine"]) == 0
    table = (out / "speed.md").read_text()
    assert table.startswith("Packed 1-bit engine (simulated backend).") and "| 32 |" in table
    assert (out / "packed" / "model.safetensors").is_file()
    # every timed pass (and warm-up) runs the full model and the configuration alike
    assert configs.count(None) > 0 and configs.count(None) == configs.count((12, 6))

    # an FP checkpoint cannot be packed; the flag needs --measure
    with pytest.raises(SystemExit):
        main(
            _argv(
                tiny_la_checkpoint,
                glue_dir,
                tmp_path / "fp",
                "--measure",
                "--length_config",
                "12,6",
                "--measure_backend",
                "engine",
            )
        )
    assert "cannot be packed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_argv(student_dir, glue_dir, tmp_path / "x", "--length_config", "12,6", "--measure_backend", "engine"))
    assert "only applies with --measure" in capsys.readouterr().err


def test_evaluate_mode_scores_full_model_and_config(tiny_la_checkpoint, glue_dir, tmp_path, capsys):
    from paddlenlp.transformers import BertTokenizer

    from paddle_binbert.checkpoints import load_model
    from paddle_binbert.data.glue import load_glue_features
    from paddle_binbert.data.sampler import evenly_spaced

    out = tmp_path / "evaluate"
    assert main(_argv(tiny_la_checkpoint, glue_dir, out, "--evaluate", "--length_config", "12,3")) == 0
    result = json.loads((out / "evaluate.json").read_text())
    # the same numbers as the evaluator called directly on the whole dev file
    model = load_model(str(tiny_la_checkpoint))
    tok = BertTokenizer.from_pretrained(str(tiny_la_checkpoint))
    features = load_glue_features(str(glue_dir), "SST-2", "dev", tok, 24)
    evaluator = GlueDevEvaluator(model, features, "SST-2", 24, tok.pad_token_id)
    assert result["num_examples"] == len(features) and result["config"] == [12, 3]
    assert result["full"]["acc"] == pytest.approx(evaluator(None)["acc"])
    assert result["config_metrics"]["acc"] == pytest.approx(evaluator((12, 3))["acc"])
    assert result["drop"] == pytest.approx(result["full"]["acc"] - result["config_metrics"]["acc"])
    with pytest.raises(SystemExit):
        main(_argv(tiny_la_checkpoint, glue_dir, out, "--evaluate"))
    assert "--evaluate needs --length_config" in capsys.readouterr().err

    # --max_eval_examples: evenly spaced dev examples by default, the first ones with --subset first
    for subset, chosen in (("spread", evenly_spaced(features, 4)), ("first", features[:4])):
        sub = tmp_path / subset
        argv = _argv(tiny_la_checkpoint, glue_dir, sub, "--evaluate", "--length_config", "12,3")
        assert main(argv + ["--max_eval_examples", "4", "--subset", subset]) == 0
        result = json.loads((sub / "evaluate.json").read_text())
        assert result["num_examples"] == 4 and result["subset"] == subset
        small = GlueDevEvaluator(model, chosen, "SST-2", 24, tok.pad_token_id)
        assert result["config_metrics"]["acc"] == pytest.approx(small((12, 3))["acc"])


def test_missing_files_are_clear_errors(tmp_path, glue_dir, capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "--checkpoint",
                str(tmp_path / "nope"),
                "--task_name",
                "SST-2",
                "--data_dir",
                str(glue_dir),
                "--output_dir",
                str(tmp_path / "o"),
            ]
        )
    assert "is not a folder" in capsys.readouterr().err
