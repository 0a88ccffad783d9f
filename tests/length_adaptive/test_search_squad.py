"""Length-configuration search on SQuAD v1.1 question answering checkpoints (SquadDevEvaluator, search-length
--task_name squad, its speed table and its errors)."""

import json
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification, BertTokenizer

from paddle_binbert.data.squad import (
    load_squad_json,
    parse_squad,
    postprocess_predictions,
    prepare_eval_features,
    squad_evaluate,
    subset_squad,
)
from paddle_binbert.data.squad.datasets import load_squad_eval
from paddle_binbert.length_adaptive import length_config_macs, measure_latency, model_macs
from paddle_binbert.length_adaptive.search import SquadDevEvaluator, main

from ..tiny import save_tiny_checkpoint
from .helpers import quick_search, record_evaluations

SQUAD_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "squad"
SQUAD_FILE = SQUAD_FIXTURES / "tiny-v1.1.json"  # 11 questions; one long context (several windows each)
VOCAB = SQUAD_FIXTURES / "vocab.txt"
WINDOWS = dict(max_seq_length=96, doc_stride=48, max_query_length=16)


def _save_tiny(folder: Path, cls) -> Path:
    """A random 2-layer, width-32 BERT of class ``cls`` with the SQuAD fixture vocabulary."""
    save_tiny_checkpoint(folder, VOCAB, cls)
    return folder


@pytest.fixture(scope="module")
def qa_checkpoint(tmp_path_factory) -> Path:
    return _save_tiny(tmp_path_factory.mktemp("qa_ckpt"), BertForQuestionAnswering)


@pytest.fixture(scope="module")
def cls_checkpoint(tmp_path_factory) -> Path:
    return _save_tiny(tmp_path_factory.mktemp("cls_ckpt"), BertForSequenceClassification)


def _reference(model, tokenizer, max_examples):
    """EM / F1 and answers of the plain model forward (one unpadded window at a time) and the SQuAD
    post-processing, on the first ``max_examples`` questions."""
    dataset = load_squad_json(SQUAD_FILE)
    examples = parse_squad(dataset)[:max_examples]
    dataset = subset_squad(dataset, {ex.id for ex in examples})
    features = prepare_eval_features(examples, tokenizer, **WINDOWS)
    starts, ends = [], []
    model.eval()
    with paddle.no_grad():
        for f in features:
            out = model(
                paddle.to_tensor([f.input_ids]),
                token_type_ids=paddle.to_tensor([f.token_type_ids]),
                return_dict=True,
            )
            starts.append(out.start_logits.numpy()[0])
            ends.append(out.end_logits.numpy()[0])
    predictions, _ = postprocess_predictions(examples, features, starts, ends)
    return squad_evaluate(dataset, predictions), predictions, features


def test_squad_evaluator_matches_the_plain_model(qa_checkpoint, monkeypatch):
    model = BertForQuestionAnswering.from_pretrained(str(qa_checkpoint))
    tokenizer = BertTokenizer.from_pretrained(str(qa_checkpoint))
    want, want_predictions, features = _reference(model, tokenizer, max_examples=8)
    assert len(features) > 8  # the long context is cut into several windows per question
    assert want["f1"] > 0  # not a vacuous 0 == 0 comparison

    data = load_squad_eval(str(SQUAD_FILE), tokenizer, max_examples=8, **WINDOWS)
    evaluator = SquadDevEvaluator(model, data, WINDOWS["max_seq_length"], tokenizer.pad_token_id, batch_size=5)
    assert evaluator.metric == "f1"
    # windows are padded to max_seq_length (budgets are token counts at it), not to the longest window
    assert evaluator.input_ids.shape == (len(features), 96)
    assert SquadDevEvaluator(model, data, 120).input_ids.shape == (len(features), 120)
    got = evaluator(None)
    assert set(got) == {"exact_match", "f1"}
    assert evaluator.last_predictions == want_predictions
    assert got["f1"] == pytest.approx(want["f1"]) and got["exact_match"] == pytest.approx(want["exact_match"])

    full = evaluator((96, 96))
    assert full == got and evaluator.last_predictions == want_predictions

    # the configuration reaches every batch's forward pass, and a real drop changes the logits
    from paddle_binbert.length_adaptive import drop_restore

    seen = []
    forward = drop_restore.length_adaptive_forward

    def recording(model, *tensors, length_config=None):
        out = forward(model, *tensors, length_config=length_config)
        seen.append((length_config, out.start_logits.numpy()))
        return out

    monkeypatch.setattr(drop_restore, "length_adaptive_forward", recording)
    evaluator(None)
    evaluator((20, 8))
    batches = -(-len(data.features) // 5)
    assert [c for c, _ in seen] == [None] * batches + [(20, 8)] * batches
    assert not np.allclose(seen[0][1], seen[batches][1])

    # each batch is trimmed to its longest window, which changes no answer: the same predictions as
    # the configuration on every window padded to max_seq_length
    lengths = evaluator.attention_mask.sum(axis=1)
    widths = [s.shape[1] for _, s in seen[batches:]]
    assert widths == [int(lengths[i : i + 5].max()) for i in range(0, len(lengths), 5)] and min(widths) < 96
    arrays = (evaluator.input_ids, evaluator.token_type_ids, evaluator.attention_mask)
    padded = [
        forward(model, *(paddle.to_tensor(a[i : i + 5]) for a in arrays), length_config=(20, 8))
        for i in range(0, len(lengths), 5)
    ]
    starts = np.concatenate([o.start_logits.numpy() for o in padded])
    ends = np.concatenate([o.end_logits.numpy() for o in padded])
    assert evaluator.last_predictions == postprocess_predictions(data.examples, data.features, starts, ends)[0]


def test_spread_subset_covers_the_file(qa_checkpoint):
    tokenizer = BertTokenizer.from_pretrained(str(qa_checkpoint))
    everything = parse_squad(load_squad_json(SQUAD_FILE))
    n = len(everything)
    data = load_squad_eval(str(SQUAD_FILE), tokenizer, max_examples=3, spread=True, **WINDOWS)
    want = [everything[i * n // 3].id for i in range(3)]
    assert [ex.id for ex in data.examples] == want != [ex.id for ex in everything[:3]]
    ids = {qa["id"] for article in data.dataset["data"] for par in article["paragraphs"] for qa in par["qas"]}
    assert ids == set(want)
    first = load_squad_eval(str(SQUAD_FILE), tokenizer, max_examples=3, **WINDOWS)
    assert [ex.id for ex in first.examples] == [ex.id for ex in everything[:3]]


def test_costs_of_a_qa_model(qa_checkpoint):
    model = BertForQuestionAnswering.from_pretrained(str(qa_checkpoint))
    want = length_config_macs(None, 96, 32, 64, num_layers=2, span_head=True)
    assert model_macs(model, None, 96) == want == model_macs(model, (96, 96), 96)
    assert model_macs(model, (48, 24), 96) == length_config_macs((48, 24), 96, 32, 64, span_head=True) < want
    assert measure_latency(model, (48, 24), 96, batch_size=2, repeats=1, warmup=0) > 0


def _argv(checkpoint, out, predict_file=SQUAD_FILE, *extra):
    return [
        "--checkpoint",
        str(checkpoint),
        "--task_name",
        "squad",
        "--predict_file",
        str(predict_file),
        "--output_dir",
        str(out),
        "--max_seq_length",
        "96",
        "--doc_stride",
        "48",
        "--max_query_length",
        "16",
        "--max_eval_examples",
        "6",
        "--batch_size",
        "8",
        *quick_search(population_size=3, evo_iter=1),
        *extra,
    ]


def test_search_squad_end_to_end(qa_checkpoint, tmp_path, monkeypatch, capsys):
    out = tmp_path / "search"
    calls = record_evaluations(monkeypatch, SquadDevEvaluator)
    argv = _argv(qa_checkpoint, out, SQUAD_FILE, "--measure", "--measure_examples", "4")
    assert main(argv) == 0
    first = len(calls)
    assert first >= 4 and len(set(calls)) == first and calls[0] == (96, 96)
    for name in ("pareto.csv", "pareto.md", "all_configs.csv", "pick.json", "search_cache.json", "pareto.png"):
        assert (out / name).is_file(), name
    pick = json.loads((out / "pick.json").read_text())
    cache = json.loads((out / "search_cache.json").read_text())
    assert pick["metric"] == "f1" and pick["tolerance"] == 1.0  # one F1 point (percent)
    assert pick["pick"]["score"] >= pick["full"]["score"] - 1.0
    assert cache["meta"]["task"] == "squad" and cache["meta"]["predict_file"] == str(SQUAD_FILE.resolve())
    assert cache["meta"]["num_examples"] == 6 and cache["meta"]["num_windows"] > 6
    assert cache["meta"]["subset"] == "spread"
    full = cache["entries"]["96-96"]
    assert set(full["metrics"]) == {"exact_match", "f1"} and full["score"] == full["metrics"]["f1"]
    assert "| f1 |" in (out / "pareto.md").read_text()
    table = (out / "speed.md").read_text()
    assert "ms per question" in table and "windows" in table and "-".join(map(str, pick["pick_config"])) in table
    assert "| 1 |" in table and "| 32 |" in table and "full, dynamic padding" in table

    # the rerun evaluates nothing
    capsys.readouterr()
    assert main(_argv(qa_checkpoint, out)) == 0 and len(calls) == first
    assert json.loads(capsys.readouterr().out)["cache_hits"] == first
    assert json.loads((out / "pick.json").read_text())["pick"] == pick["pick"]

    # a cache of another dev file (or another task) is refused
    other = tmp_path / "other-v1.1.json"
    shutil.copy(SQUAD_FILE, other)
    with pytest.raises(SystemExit):
        main(_argv(qa_checkpoint, out, other))
    err = capsys.readouterr().err
    assert "written for another search" in err and "predict_file" in err
    meta_glue = {**cache["meta"], "task": "SST-2"}
    meta_glue.pop("predict_file")
    (out / "search_cache.json").write_text(json.dumps({"meta": meta_glue, "entries": cache["entries"]}))
    with pytest.raises(SystemExit):
        main(_argv(qa_checkpoint, out))
    assert "written for another search" in capsys.readouterr().err


def test_measure_only_squad(qa_checkpoint, tmp_path):
    out = tmp_path / "measure"
    argv = _argv(qa_checkpoint, out, SQUAD_FILE, "--measure", "--length_config", "40,20", "--measure_examples", "3")
    assert main(argv) == 0
    table = (out / "speed.md").read_text()
    assert "40-20" in table and "| 32 |" in table
    assert not (out / "search_cache.json").exists()


def test_measure_squad_windows_and_padding(qa_checkpoint, monkeypatch):
    from paddle_binbert.length_adaptive import speed

    model = BertForQuestionAnswering.from_pretrained(str(qa_checkpoint))
    tokenizer = BertTokenizer.from_pretrained(str(qa_checkpoint))
    examples = parse_squad(load_squad_json(SQUAD_FILE))
    shapes = []
    original = speed.length_adaptive_forward

    def recording(model, input_ids, *args, **kwargs):
        shapes.append((tuple(input_ids.shape), kwargs.get("length_config")))
        return original(model, input_ids, *args, **kwargs)

    monkeypatch.setattr(speed, "length_adaptive_forward", recording)
    batch = [examples[-2], examples[-1]]  # short contexts: one window each, shorter than 96
    rows = speed.measure_squad_end_to_end(model, tokenizer, batch, (40, 20), batch_sizes=(2,), repeats=1, **WINDOWS)
    assert rows[0]["windows"] == 2 and rows[0]["config_ms"] > 0 and rows[0]["config_dynamic_ms"] > 0
    assert rows[0]["speedup_vs_dynamic"] == rows[0]["full_dynamic_ms"] / rows[0]["config_dynamic_ms"]
    longest = max(len(f.input_ids) for f in prepare_eval_features(batch, tokenizer, **WINDOWS))
    assert longest < 96
    assert set(shapes) == {((2, 96), None), ((2, longest), None), ((2, 96), (40, 20)), ((2, longest), (40, 20))}


def _error(argv, capsys) -> str:
    with pytest.raises(SystemExit):
        main(argv)
    return capsys.readouterr().err


def test_squad_errors(qa_checkpoint, cls_checkpoint, tmp_path, capsys):
    glue_dir = Path(__file__).resolve().parents[1] / "fixtures" / "glue" / "SST-2"
    out = str(tmp_path / "o")
    base = ["--output_dir", out, "--max_seq_length", "96", "--max_query_length", "16"]
    err = _error(["--checkpoint", str(qa_checkpoint), "--task_name", "squad", *base], capsys)
    assert "--predict_file" in err and "squad" in err
    missing = tmp_path / "nope.json"
    err = _error(
        ["--checkpoint", str(qa_checkpoint), "--task_name", "squad", "--predict_file", str(missing), *base], capsys
    )
    assert "--predict_file" in err and "nope.json" in err and "does not exist" in err
    err = _error(
        ["--checkpoint", str(cls_checkpoint), "--task_name", "SQuAD", "--predict_file", str(SQUAD_FILE), *base], capsys
    )
    assert "--checkpoint" in err and "BertForSequenceClassification" in err and "BertForQuestionAnswering" in err
    err = _error(
        ["--checkpoint", str(qa_checkpoint), "--task_name", "SST-2", "--data_dir", str(glue_dir), *base], capsys
    )
    assert "--checkpoint" in err and "BertForQuestionAnswering" in err and "--task_name squad" in err
    err = _error(
        [
            "--checkpoint",
            str(qa_checkpoint),
            "--task_name",
            "SST-2",
            "--data_dir",
            str(glue_dir),
            "--predict_file",
            str(SQUAD_FILE),
            *base,
        ],
        capsys,
    )
    assert "--predict_file is only used with --task_name squad" in err
    err = _error(["--checkpoint", str(qa_checkpoint), "--task_name", "SST-2", *base], capsys)
    assert "--data_dir is required" in err
    broken = SQUAD_FIXTURES / "bad_answer_start.json"
    err = _error(
        ["--checkpoint", str(qa_checkpoint), "--task_name", "squad", "--predict_file", str(broken), *base], capsys
    )
    assert "--predict_file" in err and "bad_answer_start.json" in err
    squad = ["--checkpoint", str(qa_checkpoint), "--task_name", "squad", "--predict_file", str(SQUAD_FILE)]
    err = _error([*squad, "--output_dir", out, "--max_seq_length", "256"], capsys)
    assert "exceeds the 128 position embeddings" in err
    err = _error([*squad, "--output_dir", out, "--max_seq_length", "40", "--max_query_length", "64"], capsys)
    assert "--max_query_length + 4" in err


def test_help_describes_the_squad_flags(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--predict_file", "--doc_stride", "--max_query_length", "--n_best_size", "--max_answer_length"):
        assert flag in text
    assert "squad" in text and "384" in text and "questions" in text
