"""Tiny SQuAD v1.1 files and a tiny QA checkpoint for the SQuAD fine-tuning / distillation tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from ..tiny import save_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
VOCAB = FIXTURES / "vocab.txt"

# (context, [(question, answer)]) - answers are substrings of their context
PARAGRAPHS: List[Tuple[str, List[Tuple[str, str]]]] = [
    (
        "The film was a great success and the actors were very good in every scene.",
        [("What was the film?", "a great success"), ("Who were very good?", "the actors")],
    ),
    (
        "A small dog ran across the green park in the morning while the children played.",
        [
            ("What ran across the park?", "A small dog"),
            ("When did the dog run?", "in the morning"),
            ("Who played?", "the children"),
        ],
    ),
    (
        "The old house on the hill was sold to a young family from the city last year.",
        [
            ("Where was the old house?", "on the hill"),
            ("Who bought the house?", "a young family"),
            ("When was the house sold?", "last year"),
        ],
    ),
    (
        "The story is funny , but the music is too loud and the ending is bad .",
        [("What is funny?", "The story"), ("What is too loud?", "the music"), ("What is bad?", "the ending")],
    ),
    (
        "Our team won the last game of the season with a very late goal .",
        [("Who won the game?", "Our team"), ("How did they win?", "with a very late goal")],
    ),
]


def squad_dict(paragraphs=PARAGRAPHS, prefix: str = "q") -> Dict:
    """A SQuAD v1.1 object with one article per paragraph."""
    data, n = [], 0
    for p_idx, (context, qas) in enumerate(paragraphs):
        items = []
        for question, answer in qas:
            start = context.index(answer)
            items.append(
                {"id": f"{prefix}{n}", "question": question, "answers": [{"text": answer, "answer_start": start}]}
            )
            n += 1
        data.append({"title": f"t{p_idx}", "paragraphs": [{"context": context, "qas": items}]})
    return {"version": "1.1", "data": data}


def write_squad_files(folder) -> Tuple[str, str]:
    """``train.json`` (13 questions) and ``dev.json`` (the first 3 paragraphs, 8 questions) in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train, dev = folder / "train.json", folder / "dev.json"
    train.write_text(json.dumps(squad_dict()), encoding="utf-8")
    dev.write_text(json.dumps(squad_dict(PARAGRAPHS[:3], prefix="d")), encoding="utf-8")
    return str(train), str(dev)


def make_qa_checkpoint(path, seed: int = 0, hidden_size: int = 32, layers: int = 2, classifier: bool = False):
    """A random tiny ``BertForQuestionAnswering`` (2 layers, width 32, 4 heads) with the test vocab
    (``classifier=True``: a ``BertForSequenceClassification`` of the same shape instead)."""
    from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification

    return save_tiny_checkpoint(
        path,
        VOCAB,
        BertForSequenceClassification if classifier else BertForQuestionAnswering,
        seed,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        intermediate_size=2 * hidden_size,
        use_cache=False,
    )


def run_example(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``examples/<script> ARGS`` in a fresh Python process; stdout and stderr captured as text."""
    command = [sys.executable, str(ROOT / "examples" / script), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
