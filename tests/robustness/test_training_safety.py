"""The training front ends refuse, before any training, what would damage a run or train on nonsense
(issue 25, training side):

* 2: an ``--output_dir`` that is, contains or would overwrite a model the run reads (teacher, student
  initialisation, the backbone to fine-tune);
* 3: ``--resume`` together with ``--overwrite_output_dir``;
* 8: non-finite or out-of-range numbers (every numeric flag of every front end);
* 9: ``--max_seq_length`` beyond the models' ``max_position_embeddings``;
* 12: an empty training or dev set (checked on the loaded features).

Every refusal is a parser error (exit code 2) naming the flag, except the checks that need loaded
models or data inside ``task_distill``'s ``run`` (ValueError naming the file / the numbers).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Callable, Dict, List

import pytest
from paddlenlp.transformers import BertForSequenceClassification

from paddle_binbert.distill import squad_distill, task_distill
from paddle_binbert.distill.pipeline import loss_config_for
from paddle_binbert.train import cli as finetune_cli
from paddle_binbert.train import run_setup
from tests.squad.helpers import make_qa_checkpoint, write_squad_files
from tests.tiny import load_run_glue, save_tiny_bert, save_tiny_checkpoint

from .helpers import FIXTURES, snapshot

SST2 = FIXTURES / "glue" / "SST-2"
run_glue = load_run_glue()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Dict[str, str]:
    """Tiny models and data of the four front ends: a GLUE backbone and teacher (64 positions), a QA
    checkpoint (128 positions) and two SQuAD files."""
    root = tmp_path_factory.mktemp("inputs")
    save_tiny_bert(root / "backbone", FIXTURES / "vocab.txt")
    save_tiny_checkpoint(
        root / "teacher", FIXTURES / "vocab.txt", BertForSequenceClassification, max_position_embeddings=64
    )
    make_qa_checkpoint(root / "qa")
    train, dev = write_squad_files(root / "squad")
    return {"backbone": str(root / "backbone"), "teacher": str(root / "teacher"), "qa": str(root / "qa"),
            "train": train, "dev": dev}  # fmt: skip


def _argv(front_end: str, inputs: Dict[str, str], out) -> List[str]:
    """A quick, valid command line of ``front_end`` writing to ``out``."""
    steps = ["--batch_size", "4", "--max_steps", "1", "--eval_steps", "1"]
    squad = ["--train_file", inputs["train"], "--predict_file", inputs["dev"], "--max_seq_length", "24",
             "--doc_stride", "6", "--max_query_length", "10"]  # fmt: skip
    glue = ["--task_name", "SST-2", "--data_dir", str(SST2), "--max_seq_length", "32"]
    return (
        {
            "run_glue": ["--model_name_or_path", inputs["backbone"], *glue],
            "task_distill": ["--teacher_path", inputs["teacher"], *glue],
            "run_squad": ["--model_name_or_path", inputs["qa"], *squad],
            "squad_distill": ["--teacher_path", inputs["qa"], *squad],
        }[front_end]
        + steps
        + ["--output_dir", str(out)]
    )


MAINS: Dict[str, Callable] = {
    "run_glue": run_glue.main,
    "task_distill": task_distill.main,
    "run_squad": finetune_cli.squad_main,
    "squad_distill": squad_distill.main,
}
PARSERS: Dict[str, Callable[[], argparse.ArgumentParser]] = {
    "run_glue": run_glue.build_parser,
    "task_distill": task_distill.build_parser,
    "run_squad": finetune_cli.build_squad_parser,
    "squad_distill": squad_distill.build_parser,
}
FRONT_ENDS = list(MAINS)


def _refused(front_end: str, argv: List[str], capsys) -> str:
    """Run ``front_end`` with ``argv``; assert a parser error (exit 2) and return its stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        MAINS[front_end](argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def _replace(argv: List[str], flag: str, value: str) -> List[str]:
    argv = list(argv)
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    return argv


# ------------------------------------------------------------------ 2: --output_dir on an input model


def _model_flag(front_end: str) -> str:
    return "--model_name_or_path" if front_end in ("run_glue", "run_squad") else "--teacher_path"


def _copy_model(src: str, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_output_dir_equal_to_the_input_model_is_refused(front_end, inputs, tmp_path, capsys, monkeypatch):
    model = _copy_model(inputs["qa" if "squad" in front_end else "backbone" if front_end == "run_glue" else "teacher"],
                        tmp_path / "model")  # fmt: skip
    before = snapshot(model)
    flag = _model_flag(front_end)
    # the same folder, spelled relative to the working directory, with a trailing slash
    monkeypatch.chdir(tmp_path)
    argv = _replace(_argv(front_end, inputs, "model/"), flag, str(model))
    err = _refused(front_end, argv, capsys)
    assert f"--output_dir model/ is {flag} {model}" in err and "overwrite" in err
    assert snapshot(model) == before


def test_distill_output_dir_on_the_student_or_containing_the_teacher_is_refused(inputs, tmp_path, capsys):
    student = _copy_model(inputs["teacher"], tmp_path / "student")
    argv = _argv("task_distill", inputs, student) + ["--student_model_name_or_path", str(student)]
    assert "is --student_model_name_or_path" in _refused("task_distill", argv, capsys)
    # the teacher is a checkpoint of the folder the run would write into (and rotate / delete)
    run = tmp_path / "run"
    teacher = _copy_model(inputs["teacher"], run / "checkpoint-4")
    before = snapshot(run)
    argv = _replace(_argv("task_distill", inputs, run), "--teacher_path", str(teacher))
    err = _refused("task_distill", argv + ["--overwrite_output_dir"], capsys)
    assert f"--output_dir {run} contains --teacher_path {teacher}" in err
    assert snapshot(run) == before
    # a bare state dict in the output folder would be overwritten by the student's weights
    bare = run / "model_state.pdparams"
    os.replace(teacher / "model_state.pdparams", bare)
    argv = _replace(_argv("task_distill", inputs, run), "--teacher_path", str(bare))
    assert "contains --teacher_path" in _refused("task_distill", argv + ["--model_config", inputs["teacher"]], capsys)


def test_output_dir_inside_the_input_model_only_refused_when_it_would_overwrite(inputs, tmp_path, capsys):
    teacher = _copy_model(inputs["teacher"], tmp_path / "teacher")
    inner = _copy_model(inputs["teacher"], teacher / "old_student")  # a model folder inside the teacher's
    argv = _argv("task_distill", inputs, inner)
    argv = _replace(argv, "--teacher_path", str(teacher))
    assert "lies inside --teacher_path" in _refused("task_distill", argv, capsys)
    # a fresh folder inside the teacher's overwrites nothing: accepted
    task_distill.parse_args(_replace(argv, "--output_dir", str(teacher / "new_run")))


def test_check_input_paths_ignores_model_names(tmp_path):
    assert run_setup.check_input_paths(str(tmp_path / "out"), {"model_name_or_path": "minilm"}) is None
    assert run_setup.check_input_paths(str(tmp_path), {"model_name_or_path": str(tmp_path / "missing")}) is None


# ------------------------------------------------------------------ 3: --resume with --overwrite_output_dir


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_resume_with_overwrite_is_a_parser_error(front_end, inputs, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (out / "results.json").write_text("{}")
    before = snapshot(out)
    err = _refused(front_end, _argv(front_end, inputs, out) + ["--resume", "--overwrite_output_dir"], capsys)
    assert "--resume and --overwrite_output_dir exclude each other" in err
    assert snapshot(out) == before  # nothing deleted


def test_chain_resume_with_overwrite_is_a_parser_error(inputs, tmp_path, capsys):
    argv = _argv("task_distill", inputs, tmp_path / "chain") + ["--distill_chain", "32-32-32,1-1-1"]
    assert "exclude each other" in _refused("task_distill", argv + ["--resume", "--overwrite_output_dir"], capsys)


# ------------------------------------------------------------------ 8: numbers


BAD_NUMBERS = [
    ("--learning_rate", "nan"),
    ("--learning_rate", "inf"),
    ("--learning_rate", "0"),
    ("--weight_decay", "nan"),
    ("--weight_decay", "-0.1"),
    ("--num_train_epochs", "nan"),
    ("--num_train_epochs", "inf"),
    ("--warmup_ratio", "nan"),
    ("--seed", "-1"),
    ("--seed", str(2**32)),
    ("--batch_size", "0"),
    ("--max_steps", "-5"),
    ("--max_seq_length", "2"),
    ("--length_drop_ratio_bound", "nan"),
    ("--layer_dropout_prob", "1"),
    ("--num_sandwich", "-1"),
]
DISTILL_NUMBERS = [
    ("--temperature", "nan"),
    ("--temperature", "0"),
    ("--clip_lr", "nan"),
    ("--clip_lr", "inf"),
    ("--calibration_batches", "-1"),
]


@pytest.mark.parametrize("front_end", FRONT_ENDS)
@pytest.mark.parametrize("flag, value", BAD_NUMBERS)
def test_bad_numbers_are_parser_errors_naming_flag_and_range(front_end, flag, value, inputs, tmp_path, capsys):
    if flag == "--num_train_epochs":  # the epochs count only without --max_steps
        argv = _replace(_argv(front_end, inputs, tmp_path / "o"), "--max_steps", "-1")
    else:
        argv = _argv(front_end, inputs, tmp_path / "o")
    err = _refused(front_end, _replace(argv, flag, value), capsys)
    assert f"{flag} must be {run_setup.NUMERIC_FLAGS[flag[2:]].describe()}, got " in err
    assert not (tmp_path / "o").exists()  # refused before the output folder was made


@pytest.mark.parametrize("front_end", ["task_distill", "squad_distill"])
@pytest.mark.parametrize("flag, value", DISTILL_NUMBERS)
def test_bad_distillation_numbers(front_end, flag, value, inputs, tmp_path, capsys):
    err = _refused(front_end, _replace(_argv(front_end, inputs, tmp_path / "o"), flag, value), capsys)
    assert f"{flag} must be {run_setup.NUMERIC_FLAGS[flag[2:]].describe()}, got" in err


def test_split_budget_and_squad_numbers(inputs, tmp_path, capsys):
    argv = _argv("task_distill", inputs, tmp_path / "o") + ["--method", "binarybert", "--split_budget_mb", "nan"]
    assert "--split_budget_mb must be positive (a finite number > 0), got nan" in _refused("task_distill", argv, capsys)
    for flag in ("--doc_stride", "--n_best_size", "--max_answer_length", "--max_query_length"):
        err = _refused("run_squad", _replace(_argv("run_squad", inputs, tmp_path / "o"), flag, "0"), capsys)
        assert f"{flag} must be positive (an integer >= 1), got 0" in err


def test_config_yaml_values_are_checked_too(inputs, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("learning_rate: .nan\nbatch_size: 2.5\n", encoding="utf-8")
    argv = _argv("task_distill", inputs, tmp_path / "o") + ["--config", str(config)]
    at = argv.index("--batch_size")
    del argv[at : at + 2]  # from the YAML file
    assert "--batch_size must be positive (an integer >= 1), got 2.5" in _refused("task_distill", argv, capsys)
    config.write_text("learning_rate: .nan\n", encoding="utf-8")
    assert "--learning_rate must be positive (a finite number > 0), got nan" in _refused("task_distill", argv, capsys)
    config.write_text("loss:\n  temperature: .nan\n", encoding="utf-8")
    args = task_distill.parse_args(argv)
    with pytest.raises(ValueError, match="loss: temperature must be a positive finite number, got nan"):
        loss_config_for(args, "bibert")


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_every_numeric_flag_has_a_range(front_end):
    parser = PARSERS[front_end]()
    numeric = {a.dest for a in parser._actions if a.type in (int, float)}
    assert numeric and numeric <= set(run_setup.NUMERIC_FLAGS), numeric - set(run_setup.NUMERIC_FLAGS)


def test_range_descriptions():
    assert run_setup.NUMERIC_FLAGS["seed"].describe() == "an integer in [0, 4294967295]"
    assert run_setup.NUMERIC_FLAGS["max_steps"].describe() == "an integer >= 1 or -1"
    assert run_setup.NUMERIC_FLAGS["layer_dropout_prob"].describe() == "a finite number in [0, 1)"
    assert not run_setup.NUMERIC_FLAGS["warmup_ratio"].accepts(True)
    assert not run_setup.NUMERIC_FLAGS["batch_size"].accepts("4")


# ------------------------------------------------------------------ 9: --max_seq_length and positions


@pytest.mark.parametrize("front_end, limit", [("run_glue", 64), ("task_distill", 64), ("run_squad", 128),
                                              ("squad_distill", 128)])  # fmt: skip
def test_max_seq_length_beyond_positions_is_refused(front_end, limit, inputs, tmp_path, capsys):
    err = _refused(front_end, _replace(_argv(front_end, inputs, tmp_path / "o"), "--max_seq_length", "100000"), capsys)
    assert f"--max_seq_length 100000 exceeds max_position_embeddings {limit}" in err
    assert not (tmp_path / "o").exists()


def test_positions_of_loaded_models_are_checked():
    """Models known only once loaded (a PaddleNLP model name, 'minilm', a chain stage) are checked then."""
    from tests.tiny import tiny_bert_config

    run_setup.check_positions(40, {"teacher": tiny_bert_config()})
    with pytest.raises(ValueError, match="--max_seq_length 41 exceeds the teacher's max_position_embeddings 40"):
        run_setup.check_positions(41, {"teacher": tiny_bert_config()})


# ------------------------------------------------------------------ 12: empty training / dev sets


def _empty(split: str):
    """A ``load_glue_features`` whose ``split`` comes out empty (as a header-only file would give)."""
    from paddle_binbert.data import glue

    real = glue.load_glue_features

    def load(data_dir, task, which, *args, **kwargs):
        return [] if which == split else real(data_dir, task, which, *args, **kwargs)

    return load


@pytest.mark.parametrize("split", ["train", "dev"])
def test_run_glue_stops_on_an_empty_set_before_training(split, inputs, tmp_path, capsys, monkeypatch):
    from paddle_binbert.data import glue

    monkeypatch.setattr(glue, "load_glue_features", _empty(split))
    out = tmp_path / "o"
    err = _refused("run_glue", _argv("run_glue", inputs, out), capsys)
    assert f"{SST2 / (split + '.tsv')} gave no {split} examples" in err
    assert not any(p.name.startswith("checkpoint-") for p in out.iterdir())


@pytest.mark.parametrize("split", ["train", "dev"])
def test_task_distill_stops_on_an_empty_set_before_training(split, inputs, tmp_path, monkeypatch):
    from paddle_binbert.data import glue

    monkeypatch.setattr(glue, "load_glue_features", _empty(split))
    out = tmp_path / "o"
    with pytest.raises(ValueError, match=f"{split}.tsv gave no {split} examples"):
        task_distill.main(_argv("task_distill", inputs, out))
    assert not any(p.name.startswith("checkpoint-") for p in out.iterdir())
