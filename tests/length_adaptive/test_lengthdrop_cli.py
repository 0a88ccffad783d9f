"""--length_adaptive in run_squad.py and task_distill.py (GLUE and SQuAD): the shared flags, their
errors, end-to-end runs on tiny models, and the distillation trainer's sandwich loss checked by hand."""

import argparse
import json
from pathlib import Path

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertTokenizer,
)

from paddle_binbert import quantize_model
from paddle_binbert.distill import squad_distill, task_distill
from paddle_binbert.distill.recipes import get_method, loss_config_from_flags
from paddle_binbert.length_adaptive import LengthDropConfig, inplace_distill_loss, sandwich_loss
from paddle_binbert.length_adaptive.cli import (
    LENGTH_DROP_FLAGS,
    add_length_drop_args,
    check_length_drop_args,
    length_drop_config,
    length_drop_settings,
)
from paddle_binbert.length_adaptive.lengthdrop import (
    sample_layer_skip,
    sample_length_config,
    smallest_length_config,
    sub_model_logits,
)
from paddle_binbert.models import quant_config_of
from paddle_binbert.train.cli import build_squad_parser as squad_parser
from paddle_binbert.train.cli import squad_main as run_squad
from paddle_binbert.train.finetune import checkpoint_has_qa_head

from ..squad.helpers import write_squad_files
from ..tiny import BIBERT_FLAGS, load_run_glue, save_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SST2 = FIXTURES / "glue" / "SST-2"
LA = ["--length_adaptive", "--num_sandwich", "2", "--length_drop_ratio_bound", "0.3", "--layer_dropout_prob", "0.2"]
LA_PARTS = {"loss_la_full", "loss_la_smallest", "loss_la_random"}


def save_checkpoint(path, cls, seed=0, dropout=0.1, num_labels=2, init_range=0.02):
    """A random 2-layer, width-32 BERT of class ``cls`` with the fixture vocabulary, saved to ``path``."""
    return save_tiny_checkpoint(
        path,
        FIXTURES / "vocab.txt",
        cls,
        seed,
        max_position_embeddings=64,
        num_labels=num_labels,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        initializer_range=init_range,
        use_cache=False,
    )


@pytest.fixture(scope="module")
def squad_files(tmp_path_factory):
    return write_squad_files(tmp_path_factory.mktemp("la_squad"))


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("la_qa")
    save_checkpoint(path, BertForQuestionAnswering)
    return str(path)


@pytest.fixture(scope="module")
def cls_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("la_cls")
    save_checkpoint(path, BertForSequenceClassification)
    return str(path)


def squad_args(qa_dir, files, out):
    return [
        "--model_name_or_path", qa_dir, "--train_file", files[0], "--predict_file", files[1],
        "--output_dir", str(out), "--max_seq_length", "24", "--doc_stride", "6", "--max_query_length", "10",
        "--batch_size", "8", "--learning_rate", "5e-3", "--logging_steps", "1", "--seed", "3",
    ]  # fmt: skip


def distill_args(teacher, out, task="SST-2"):
    args = [
        "--student_model_name_or_path", teacher, "--teacher_path", teacher, "--task_name", task,
        "--batch_size", "4", "--learning_rate", "1e-3", "--logging_steps", "1", "--seed", "1",
        "--output_dir", str(out),
    ]  # fmt: skip
    return args + (["--data_dir", str(SST2), "--max_seq_length", "32"] if task != "squad" else [])


def squad_distill_args(teacher, files, out):
    return distill_args(teacher, out, task="squad") + [
        "--train_file", files[0], "--predict_file", files[1], "--max_seq_length", "24", "--doc_stride", "6",
        "--max_query_length", "10",
    ]  # fmt: skip


def train_logs(out):
    history = json.loads((Path(out) / "trainer_state.json").read_text())["log_history"]
    return [e for e in history if "loss" in e]


# ---------------------------------------------------------------------------------------------- flags


def _parsers():
    return {
        "run_glue": load_run_glue().build_parser(),
        "run_squad": squad_parser(),
        "task_distill": task_distill.build_parser(),
        "squad_distill": squad_distill.build_parser(),
    }


def test_one_definition_of_the_flags():
    reference = argparse.ArgumentParser()
    add_length_drop_args(reference)
    want = {a.dest: a for a in reference._actions if a.dest in LENGTH_DROP_FLAGS}
    for name, parser in _parsers().items():
        got = {a.dest: a for a in parser._actions if a.dest in LENGTH_DROP_FLAGS}
        assert set(got) == set(LENGTH_DROP_FLAGS), name
        for dest, action in got.items():
            assert action.option_strings == want[dest].option_strings, (name, dest)
            assert action.default == want[dest].default and action.type == want[dest].type, (name, dest)
            assert action.help.startswith(want[dest].help), (name, dest)
    defaults = reference.parse_args([])
    assert length_drop_config(defaults) is None
    assert length_drop_settings(None) == {"length_adaptive": False, "length_drop": None}
    on = reference.parse_args(["--length_adaptive", "--num_sandwich", "3"])
    config = length_drop_config(on)
    assert config == LengthDropConfig(num_sandwich=3, length_drop_ratio_bound=0.2, layer_dropout_prob=0.2)
    assert length_drop_settings(config)["length_drop"]["num_sandwich"] == 3
    # the distillation help tells how chains are handled
    help_text = next(a.help for a in _parsers()["task_distill"]._actions if a.dest == "length_adaptive")
    assert "final stage" in help_text and "distillation loss" in help_text


BAD = [("--num_sandwich", "-1"), ("--length_drop_ratio_bound", "1.0"), ("--layer_dropout_prob", "-0.1")]


@pytest.mark.parametrize("flag, value", BAD)
def test_check_length_drop_args_names_the_flag(flag, value, capsys):
    parser = argparse.ArgumentParser()
    add_length_drop_args(parser)
    with pytest.raises(SystemExit):
        check_length_drop_args(parser, parser.parse_args([flag, value]))
    assert flag in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", BAD)
@pytest.mark.parametrize("script", ["run_squad", "task_distill", "squad_distill"])
def test_bad_flags_are_parser_errors(script, flag, value, qa_dir, cls_dir, squad_files, tmp_path, capsys):
    out = tmp_path / "x"
    if script == "run_squad":
        argv, entry = squad_args(qa_dir, squad_files, out), run_squad
    elif script == "task_distill":
        argv, entry = distill_args(cls_dir, out), task_distill.main
    else:
        argv, entry = squad_distill_args(qa_dir, squad_files, out), task_distill.main  # dispatched to SQuAD
    with pytest.raises(SystemExit) as exit_info:
        entry(argv + ["--length_adaptive", flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "must be" in err
    assert not out.exists() or not any(out.iterdir())


# ------------------------------------------------------------------------------------------- run_squad


def test_qa_checkpoint_keeps_its_head(qa_dir):
    from paddle_binbert.checkpoints import resolve_backbone

    saved = BertForQuestionAnswering.from_pretrained(qa_dir)
    assert checkpoint_has_qa_head(qa_dir)
    loaded = BertForQuestionAnswering.from_pretrained(resolve_backbone(qa_dir), use_cache=False)
    np.testing.assert_array_equal(loaded.classifier.weight.numpy(), saved.classifier.weight.numpy())
    saved.eval()
    loaded.eval()
    ids = paddle.to_tensor([[2, 7, 9, 11, 3, 5, 3]])
    a, b = saved(ids), loaded(ids)
    np.testing.assert_allclose(a[0].numpy(), b[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(a[1].numpy(), b[1].numpy(), atol=1e-6)


def test_run_squad_length_adaptive_from_qa_checkpoint(qa_dir, squad_files, tmp_path):
    out = tmp_path / "squad_la"
    results = run_squad(squad_args(qa_dir, squad_files, out) + ["--max_steps", "3", "--eval_steps", "3"] + LA)
    saved = json.loads((out / "results.json").read_text())
    assert saved["length_adaptive"] is True and saved["qa_head_from_checkpoint"] is True
    assert saved["length_drop"] == {
        "num_sandwich": 2,
        "length_drop_ratio_bound": 0.3,
        "layer_dropout_prob": 0.2,
        "min_length": 2,
    }
    assert saved["global_steps"] == 3 and results["dev"]["f1"] >= 0.0
    logs = train_logs(out)
    assert len(logs) == 3 and all(LA_PARTS <= set(e) for e in logs)
    # the logged loss is the sandwich average of its parts
    for e in logs:
        parts = (e["loss_la_full"] + e["loss_la_smallest"] + 2 * e["loss_la_random"]) / 4
        assert e["loss"] == pytest.approx(parts, rel=1e-3, abs=1e-4)
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]


def test_run_squad_without_length_adaptive_records_it(qa_dir, squad_files, tmp_path):
    out = tmp_path / "squad_plain"
    results = run_squad(squad_args(qa_dir, squad_files, out) + ["--max_steps", "1", "--max_eval_examples", "2"])
    assert results["length_adaptive"] is False and results["length_drop"] is None
    assert not any(k.startswith("loss_la_") for e in train_logs(out) for k in e)


# ---------------------------------------------------------------------------------------- task_distill


@pytest.mark.parametrize("method", ["bit", "bibert"])
def test_task_distill_glue_length_adaptive(method, cls_dir, tmp_path):
    out = tmp_path / method
    flags = BIBERT_FLAGS if method == "bibert" else ["--method", "bit"]
    results = task_distill.main(distill_args(cls_dir, out) + ["--max_steps", "3", "--eval_steps", "3"] + flags + LA)
    saved = json.loads((out / "results.json").read_text())
    assert saved["method"] == method and saved["bits"] == "1-1-1"
    assert saved["length_adaptive"] is True and saved["length_drop"]["length_drop_ratio_bound"] == 0.3
    assert results["global_steps"] == 3
    logs = train_logs(out)
    assert logs and all(LA_PARTS | {"loss_pred"} <= set(e) for e in logs)


def test_task_distill_squad_length_adaptive(qa_dir, squad_files, tmp_path):
    out = tmp_path / "squad_bibert"
    argv = squad_distill_args(qa_dir, squad_files, out) + ["--max_steps", "2", "--eval_steps", "2"]
    results = task_distill.main(argv + BIBERT_FLAGS + LA)
    saved = json.loads((out / "results.json").read_text())
    assert saved["task"] == "squad" and saved["method"] == "bibert"
    assert saved["length_adaptive"] is True and saved["length_drop"]["num_sandwich"] == 2
    assert results["global_steps"] == 2 and 0.0 <= saved["student"]["f1"] <= 100.0
    logs = train_logs(out)
    assert logs and all(LA_PARTS | {"loss_pred", "loss_query", "loss_hid_distance"} <= set(e) for e in logs)


def test_binarybert_pipeline_uses_length_drop_in_its_final_stage_only(cls_dir, tmp_path):
    out = tmp_path / "binarybert"
    quick = ["--max_steps", "1", "--eval_steps", "1", "--max_eval_examples", "4", "--method", "binarybert"]
    results = task_distill.main(distill_args(cls_dir, out) + quick + LA)
    stages = results["chain"]
    assert [r["stage"] for r in stages] == ["ternary_intermediate", "ternary_prediction", "split_binary"]
    assert [r["length_adaptive"] for r in stages] == [False, False, True]
    assert results["length_adaptive"] is True  # the chain's results are the final stage's
    for row, with_la in zip(stages, (False, False, True)):
        logs = train_logs(row["args"]["output_dir"])
        assert logs and all((LA_PARTS <= set(e)) == with_la for e in logs), row["stage"]


# ------------------------------------------------------------------------- the sandwich loss, by hand


def _distill_trainer(tmp_path, method, squad=False, num_sandwich=2, files=None):
    """A BinBertTrainer distilling (with LengthDrop) a dropout-free tiny teacher into its quantized copy,
    with one training batch."""
    from paddle_binbert.data.glue import glue_collator, load_glue_features
    from paddle_binbert.data.squad.datasets import load_squad_train, squad_collator
    from paddle_binbert.train.objectives import build_objective
    from paddle_binbert.train.run_setup import make_training_args
    from paddle_binbert.train.trainer import BinBertTrainer

    cls = BertForQuestionAnswering if squad else BertForSequenceClassification
    # no dropout (deterministic); wide initialisation so that the binarized students' outputs vary with the input
    teacher = save_checkpoint(tmp_path / "teacher", cls, seed=4, dropout=0.0, init_range=0.5)
    student = cls.from_pretrained(str(tmp_path / "teacher"))
    quantize_model(teacher, "fp")
    quantize_model(student, get_method(method).quant_preset)
    bi = method == "bibert"
    loss_config = loss_config_from_flags(get_method(method), bi, True, True, bi, bi, bi)
    tok = BertTokenizer.from_pretrained(str(tmp_path / "teacher"))
    if squad:
        data = load_squad_train(files[0], tok, max_seq_length=24, doc_stride=6, max_query_length=10)
        batch = squad_collator(int(tok.pad_token_id))(data[:4])
    else:
        data = load_glue_features(str(SST2), "SST-2", "train", tok, 32)
        batch = glue_collator(tok)(data[:4])
    config = LengthDropConfig(num_sandwich=num_sandwich, length_drop_ratio_bound=0.3, layer_dropout_prob=0.5)
    args = make_training_args(output_dir=str(tmp_path / "out"), batch_size=4, learning_rate=1e-3, num_train_epochs=1)
    trainer = BinBertTrainer(
        model=student,
        args=args,
        train_dataset=data,
        tokenizer=tok,
        objective=build_objective(teacher, loss_config, is_regression=False, length_drop=config),
    )
    return trainer, student, batch, config


@pytest.mark.parametrize(
    "method, squad, num_sandwich", [("bit", False, 2), ("bibert", False, 3), ("bibert", True, 2), ("tinybert", True, 1)]
)
def test_distillation_trainer_loss_is_the_sandwich_of_the_distillation_loss(
    method, squad, num_sandwich, squad_files, tmp_path
):
    trainer, student, batch, config = _distill_trainer(tmp_path, method, squad, num_sandwich, squad_files)
    assert quant_config_of(student).name == get_method(method).quant_preset
    student.train()
    trainer.compute_loss(student, batch)  # first step: data-initialised quantizer scales settle
    seed = 123

    trainer.objective.rng = np.random.default_rng(seed)
    loss = float(trainer.compute_loss(student, batch))

    # 1) sandwich_loss called directly with the trainer's own full-loss function
    distill = trainer.objective.full
    direct, _, terms = sandwich_loss(student, batch, distill.training_loss, config, np.random.default_rng(seed))
    assert loss == pytest.approx(float(direct), rel=1e-6)

    # 2) by hand: (full distillation loss + smallest KL + random KLs) / (n + 2)
    full, full_logits = distill.training_loss(student, batch)
    trainer.objective, sandwich = distill, trainer.objective
    assert float(trainer.compute_loss(student, batch)) == pytest.approx(float(full), rel=1e-6)  # no LengthDrop
    trainer.objective = sandwich
    seq, layers = int(batch["input_ids"].shape[1]), 2
    smallest = smallest_length_config(seq, layers, config.length_drop_ratio_bound, config.min_length)
    assert smallest[-1] < seq  # the smallest model really drops tokens
    kl_small = float(inplace_distill_loss(sub_model_logits(student, batch, smallest), full_logits))
    rng = np.random.default_rng(seed)
    kl_random = []
    for _ in range(num_sandwich):
        lengths = sample_length_config(seq, layers, config.length_drop_ratio_bound, rng, config.min_length)
        skip = sample_layer_skip(layers, config.layer_dropout_prob, rng)
        kl_random.append(float(inplace_distill_loss(sub_model_logits(student, batch, lengths, skip), full_logits)))
    want = (float(full) + kl_small + sum(kl_random)) / (num_sandwich + 2)
    assert loss == pytest.approx(want, rel=1e-5)
    assert terms["full"] == pytest.approx(float(full), rel=1e-6) and kl_small > 0.0
    assert terms["random"] == pytest.approx(sum(kl_random) / num_sandwich, rel=1e-5, abs=1e-7)

    # the distillation terms and the sandwich parts are logged
    logs = {"loss": loss}
    trainer.log(logs)
    assert LA_PARTS <= set(logs) and "loss_pred" in logs
