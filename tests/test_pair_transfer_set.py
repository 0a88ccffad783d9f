"""benchmarks/pair_transfer_set.py: TF-IDF neighbour pairs and the transfer set task_distill reads."""

import json
from pathlib import Path

import numpy as np
from paddlenlp.transformers import BertForSequenceClassification

from paddle_binbert.data.glue import read_glue_examples
from tests.tiny import load_script, save_tiny_checkpoint

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _script():
    return load_script("benchmarks/pair_transfer_set.py", "pair_transfer_set")


def test_neighbour_pairs_are_nearest_new_and_unordered():
    sentences = [
        "a man plays a guitar",
        "a man plays a guitar",  # repeated: one sentence
        "a man plays the guitar loudly",
        "A MAN PLAYS A GUITAR",  # the same words: never paired with the first
        "stocks fell sharply on monday",
        "stocks rose sharply on friday",
    ]
    existing = {("stocks rose sharply on friday", "stocks fell sharply on monday")}
    pairs = _script().neighbour_pairs(sentences, existing, k=1)
    assert pairs == sorted(set(pairs)) and all(a < b for a, b in pairs)
    assert ("a man plays a guitar", "a man plays the guitar loudly") in pairs
    for a, b in pairs:
        assert a.lower() != b.lower()
        assert (a, b) not in existing and (b, a) not in existing
        assert {a, b} != {"a man plays a guitar", "A MAN PLAYS A GUITAR"}
    # the two stock sentences are each other's nearest, but already a training pair
    assert not any("stocks" in a and "stocks" in b for a, b in pairs)
    assert _script().neighbour_pairs(sentences, existing, k=0) == []


def test_transfer_set_is_scored_by_the_teacher_and_read_as_train_aug(tmp_path):
    script = _script()
    teacher = tmp_path / "teacher"
    save_tiny_checkpoint(teacher, FIXTURES / "vocab.txt", BertForSequenceClassification, num_labels=1)
    out = tmp_path / "out"
    data = FIXTURES / "glue" / "STS-B"
    argv = ["--data_dir", str(data), "--teacher", str(teacher), "--out", str(out), "--neighbours", "2"]
    assert script.main(argv) == 0
    train = read_glue_examples(data, "STS-B", "train")
    aug = read_glue_examples(out, "STS-B", "train_aug")
    cache = json.loads((out / "transfer_scores.json").read_text(encoding="utf-8"))
    assert len(aug) == len(train) + len(cache["pairs"]) > len(train)
    assert [(e.text_a, e.text_b, e.label) for e in aug[: len(train)]] == [(e.text_a, e.text_b, e.label) for e in train]
    scores = np.clip(np.asarray(cache["scores"]), 0.0, 5.0)
    new = aug[len(train) :]
    assert [[e.text_a, e.text_b] for e in new] == cache["pairs"]
    np.testing.assert_allclose([e.label for e in new], scores, atol=5e-4)
    # a second run reuses the cached scores (the teacher is gone) and writes the same file
    before = (out / "train_aug.tsv").read_bytes()
    for f in teacher.iterdir():
        f.unlink()
    assert script.main(argv) == 0
    assert (out / "train_aug.tsv").read_bytes() == before
    assert (out / "dev.tsv").read_bytes() == (data / "dev.tsv").read_bytes()
