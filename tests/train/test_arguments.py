"""The settings dataclasses behind the command lines: every flag has a field, flag errors exit
through the parser, and the two distillation parsers are one set of flags."""

import argparse
import dataclasses

import pytest

from paddle_binbert.distill import cli as distill_cli
from paddle_binbert.length_adaptive.search import SearchArguments
from paddle_binbert.length_adaptive.search import build_parser as search_parser
from paddle_binbert.train import cli as finetune_cli
from paddle_binbert.train.arguments import (
    DistillArguments,
    FinetuneArguments,
    FlagError,
    RunArguments,
    SquadDistillArguments,
    SquadFinetuneArguments,
)
from paddle_binbert.train.flags import run_command

PARSERS = {
    "run_glue": (finetune_cli.build_glue_parser, FinetuneArguments),
    "run_squad": (finetune_cli.build_squad_parser, SquadFinetuneArguments),
    "task_distill": (lambda: distill_cli.build_parser("glue"), DistillArguments),
    "squad_distill": (lambda: distill_cli.build_parser("squad"), SquadDistillArguments),
    "search_length": (search_parser, SearchArguments),
}


def _dests(parser: argparse.ArgumentParser) -> set:
    return {a.dest for a in parser._actions if a.dest != "help"}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_flag_has_a_field_with_the_parser_default(name):
    build, cls = PARSERS[name]
    parser = build()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    missing = _dests(parser) - set(fields)
    assert not missing, f"{name}: flags without a field in {cls.__name__}: {sorted(missing)}"
    # the defaults of the optional flags come from the parser: from_flags keeps them as parsed
    flags = {a.dest: a.default for a in parser._actions if a.dest != "help"}
    args = cls.from_flags(flags)
    assert args.flags() == {**{f: getattr(cls(), f) for f in fields}, **flags}


def test_from_flags_refuses_unknown_flags():
    with pytest.raises(TypeError, match="no_such_flag"):
        RunArguments.from_flags({"output_dir": "x", "no_such_flag": 1})


def test_length_drop_config_only_with_length_adaptive():
    assert RunArguments().length_drop_config() is None
    config = RunArguments(length_adaptive=True, num_sandwich=3).length_drop_config()
    assert config.num_sandwich == 3 and config.length_drop_ratio_bound == 0.2


def test_the_squad_distillation_parser_is_the_glue_one_plus_the_squad_flags():
    glue, squad = distill_cli.build_parser("glue"), distill_cli.build_parser("squad")
    squad_only = {"train_file", "predict_file", "doc_stride", "max_query_length", "n_best_size", "max_answer_length"}
    assert _dests(squad) == _dests(glue) | squad_only
    differ = {
        a.dest
        for a in glue._actions
        for b in squad._actions
        if a.dest == b.dest and (a.default, a.required, a.type) != (b.default, b.required, b.type)
    }
    assert differ == {"task_name", "data_dir", "warmup_ratio"}


def test_flag_errors_exit_through_the_parser(capsys):
    parser = argparse.ArgumentParser(prog="demo")
    parser.add_argument("--output_dir", default="out")

    def validate(args):
        raise FlagError("--output_dir out is bad")

    with pytest.raises(SystemExit) as exit_info:
        run_command(parser, [], RunArguments, validate, lambda args: {})
    assert exit_info.value.code == 2
    assert "demo: error: --output_dir out is bad" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, squad",
    [
        (["--task_name", "squad", "--bi"], True),
        (["--bi", "--task_name=SQuAD-v1.1"], True),
        (["--task_name", "rte", "--task_name", "squad"], True),
        (["--task_name", "SST-2"], False),
        (["--task_name"], False),
        ([], False),
    ],
)
def test_wants_squad(argv, squad):
    assert distill_cli.wants_squad(argv) is squad
