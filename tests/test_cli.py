"""The paddle-binbert console command dispatches to the library's entry points."""

import pytest

from paddle_binbert.cli import main


def test_help_lists_subcommands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "convert" in out and "distill" in out and "accounting" in out


def test_unknown_subcommand(capsys):
    assert main(["frobnicate"]) == 2
    assert "valid: convert" in capsys.readouterr().err


def test_accounting_subcommand(capsys):
    assert main(["accounting", "--config", "bert-base", "--bits", "32-32-32"]) == 0
    assert "417.6" in capsys.readouterr().out


def test_distill_help_documents_bibert_flags(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["distill", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--teacher_path", "--pred_distill", "--query_distill", "--bi", "--resume", "--method"):
        assert flag in out
