"""A tiny checkpoint trained by examples/run_glue.py --length_adaptive, shared by the tests here."""

import json
from pathlib import Path

import pytest

from ..tiny import load_run_glue, save_tiny_bert
from .helpers import ROOT, sst2_args

FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    """The SST-2 fixture folder (a few dozen examples)."""
    return FIXTURES / "glue" / "SST-2"


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer, width-32 random BERT with the fixture vocabulary, saved as a PaddleNLP folder."""
    folder = tmp_path_factory.mktemp("tiny_bert_la")
    save_tiny_bert(folder, FIXTURES / "vocab.txt")
    return folder


@pytest.fixture(scope="session")
def la_run(tiny_bert_dir, glue_dir, tmp_path_factory):
    """(output folder, results) of a 4-step LengthDrop fine-tuning run on the SST-2 fixture."""
    out = tmp_path_factory.mktemp("la_run") / "sst2_la"
    argv = [
        "--model_name_or_path",
        str(tiny_bert_dir),
        *sst2_args(glue_dir, out, "--max_seq_length", "24", "--batch_size", "4", "--learning_rate", "1e-3"),
        "--logging_steps",
        "2",
        "--max_steps",
        "4",
        "--eval_steps",
        "2",
        "--length_adaptive",
        "--num_sandwich",
        "2",
        "--length_drop_ratio_bound",
        "0.2",
        "--layer_dropout_prob",
        "0.2",
    ]
    results = load_run_glue().main(argv)
    return out, results, json.loads((out / "trainer_state.json").read_text())


@pytest.fixture(scope="session")
def tiny_la_checkpoint(la_run) -> Path:
    """The checkpoint folder written by the LengthDrop run."""
    return la_run[0]
