"""End-to-end test of examples/run_glue.py on a tiny random BERT, plus BinBertTrainer helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paddle_binbert.data.glue import get_task_spec

from .tiny import load_run_glue, save_tiny_bert

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
GLUE = FIXTURES / "glue"


run_glue = load_run_glue()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, width-32 random BERT with the fixture vocabulary, saved as a PaddleNLP folder."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    save_tiny_bert(folder, FIXTURES / "vocab.txt")
    return folder


def _args(model: Path, task: str, out: Path, *extra: str) -> list:
    return [
        "--model_name_or_path",
        str(model),
        "--task_name",
        task,
        "--data_dir",
        str(GLUE / get_task_spec(task).name),
        "--output_dir",
        str(out),
        "--max_seq_length",
        "32",
        "--batch_size",
        "4",
        "--learning_rate",
        "1e-3",
        "--logging_steps",
        "2",
        *extra,
    ]


def test_sst2_run_and_resume(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "sst2"
    results = run_glue.main(_args(tiny_bert, "SST-2", out, "--max_steps", "4", "--eval_steps", "2"))
    for name in ("config.json", "model_state.pdparams", "vocab.txt", "tokenizer_config.json", "results.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert saved["task"] == "SST-2" and saved["main_metric"] == "acc"
    assert 0.0 <= saved["dev"]["dev"]["acc"] <= 1.0 and saved["main_metric_value"] == saved["dev"]["dev"]["acc"]
    assert saved["global_steps"] == 4 and saved["num_train_examples"] == 12 and saved["wall_time_seconds"] > 0
    assert saved["best_checkpoint"] and Path(saved["best_checkpoint"]).is_dir()
    assert results["dev"] == saved["dev"]
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "0", "1": "1"} and config["problem_type"] == "single_label_classification"

    from paddlenlp.transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(str(out))
    assert model.num_labels == 2

    # an existing run is not overwritten by accident ...
    with pytest.raises(SystemExit):
        run_glue.main(_args(tiny_bert, "SST-2", out, "--max_steps", "4", "--eval_steps", "2"))
    # ... but can be resumed from its last checkpoint
    resumed = run_glue.main(_args(tiny_bert, "SST-2", out, "--max_steps", "7", "--eval_steps", "2", "--resume"))
    assert resumed["resumed_from"].endswith("checkpoint-4") and resumed["global_steps"] == 7
    # the last step is evaluated and checkpointed although 7 is not a multiple of eval_steps
    assert (out / "checkpoint-7").is_dir()
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert any(entry.get("step") == 7 and "eval_acc" in entry for entry in history)
    assert len(list(out.glob("checkpoint-*"))) <= 3  # save_total_limit (+ the best one)


def test_stsb_regression(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "stsb"
    results = run_glue.main(_args(tiny_bert, "sts-b", out, "--max_steps", "2", "--max_train_examples", "8"))
    assert set(results["dev"]["dev"]) >= {"pearson", "spearmanr", "corr"}
    assert results["main_metric"] == "corr" and results["num_train_examples"] == 8
    config = json.loads((out / "config.json").read_text())
    assert config.get("num_labels", 1) == 1 and config.get("problem_type") == "regression"


def test_mnli_two_dev_sets(tiny_bert: Path, tmp_path: Path) -> None:
    results = run_glue.main(_args(tiny_bert, "mnli", tmp_path / "mnli", "--max_steps", "1", "--max_eval_examples", "6"))
    assert set(results["dev"]) == {"dev_matched", "dev_mismatched"}
    assert results["num_dev_examples"] == {"dev_matched": 6, "dev_mismatched": 6}


@pytest.mark.parametrize(
    "task, data_dir, message",
    [
        ("sst-5", "SST-2", "valid task names"),
        ("rte", "empty", "train.tsv' in"),
        ("sst2", "missing", "does not exist"),
    ],
)
def test_validation_before_heavy_work(
    tmp_path: Path, capsys: pytest.CaptureFixture, task: str, data_dir: str, message: str
) -> None:
    (tmp_path / "empty").mkdir()
    folder = GLUE / data_dir if data_dir == "SST-2" else tmp_path / data_dir
    argv = ["--task_name", task, "--data_dir", str(folder), "--output_dir", str(tmp_path / "o"), "--max_steps", "1"]
    with pytest.raises(SystemExit) as info:
        run_glue.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing created before the checks passed


def test_bad_numbers_rejected(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["--task_name", "sst2", "--data_dir", str(GLUE / "SST-2"), "--output_dir", str(tmp_path / "o")]
    for extra in (["--batch_size", "0"], ["--eval_steps", "3", "--save_steps", "4"], ["--warmup_ratio", "2"]):
        with pytest.raises(SystemExit):
            run_glue.main(base + extra)


def test_every_flag_has_help() -> None:
    parser = run_glue.build_parser()
    flags = {a.dest: a.help for a in parser._actions if a.dest != "help"}
    required = {
        "model_name_or_path",
        "task_name",
        "data_dir",
        "max_seq_length",
        "batch_size",
        "learning_rate",
        "num_train_epochs",
        "weight_decay",
        "warmup_ratio",
        "seed",
        "logging_steps",
        "save_steps",
        "eval_steps",
        "max_steps",
        "max_train_examples",
        "output_dir",
        "device",
        "resume",
    }
    assert required <= set(flags)
    assert all(flags.values())
    assert parser.get_default("model_name_or_path") == "minilm"


# ---------------------------------------------------------------- trainer helpers


def test_make_training_args() -> None:
    from paddle_binbert.train.run_setup import make_training_args

    args = make_training_args("/tmp/x", 8, 1e-4, 2, eval_steps=100, metric_for_best_model="mcc")
    assert args.evaluation_strategy.value == "steps" and args.eval_steps == 100 and args.save_steps == 100
    assert args.load_best_model_at_end and args.metric_for_best_model == "mcc" and args.greater_is_better
    assert args.report_to == [] and args.dataloader_num_workers == 0 and not args.disable_tqdm
    assert args.weight_decay == 0.01 and args.warmup_ratio == 0.1 and args.save_total_limit <= 3
    per_epoch = make_training_args("/tmp/x", 8, 1e-4, 2)
    assert per_epoch.evaluation_strategy.value == per_epoch.save_strategy.value == "epoch"
    assert make_training_args("/tmp/x", 8, 1e-4, 2, metric_for_best_model=None).greater_is_better is False
    with pytest.raises(ValueError):
        make_training_args("/tmp/x", 8, 1e-4, 2, eval_steps=100, save_steps=150)


def test_trainer_no_decay_rule_and_sampler(tiny_bert: Path) -> None:
    import paddle
    from paddlenlp.transformers import BertForSequenceClassification, BertTokenizer

    from paddle_binbert.data.glue import glue_collator, load_glue_features
    from paddle_binbert.data.sampler import LengthGroupedBatchSampler
    from paddle_binbert.train.run_setup import make_training_args
    from paddle_binbert.train.trainer import BinBertTrainer

    class WithQuantizer(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.bert = BertForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
            self.act_quantizer = paddle.nn.Linear(2, 2)

        def forward(self, **inputs):
            return self.bert(**inputs)

    model = WithQuantizer()
    tokenizer = BertTokenizer.from_pretrained(str(tiny_bert))
    train = load_glue_features(GLUE / "SST-2", "sst2", "train", tokenizer, 32)
    args = make_training_args("/tmp/unused_binbert_trainer_test", 4, 1e-3, 1, max_steps=1)
    trainer = BinBertTrainer(
        model=model, args=args, train_dataset=train, data_collator=glue_collator(tokenizer), tokenizer=tokenizer
    )
    decayed = trainer.decay_parameter_names()
    by_name = {n: p.name for n, p in model.named_parameters()}
    assert by_name["bert.classifier.weight"] in decayed
    assert by_name["bert.bert.encoder.layers.0.linear1.weight"] in decayed
    for name, pname in by_name.items():
        if "bias" in name or "norm" in name or "quantizer" in name:
            assert pname not in decayed, name
    trainer.create_optimizer_and_scheduler(num_training_steps=1)
    assert trainer.optimizer._apply_decay_param_fun(by_name["bert.classifier.weight"])
    assert not trainer.optimizer._apply_decay_param_fun(by_name["act_quantizer.weight"])

    loader = trainer.get_train_dataloader()
    assert isinstance(loader.batch_sampler, LengthGroupedBatchSampler)
    batch = next(iter(loader))
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
