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


def _varied_teacher(folder, bias=2.5):
    """A tiny regression teacher with a large random head (scores that differ from pair to pair)
    and the given output bias."""
    import paddle

    model = save_tiny_checkpoint(folder, FIXTURES / "vocab.txt", BertForSequenceClassification, num_labels=1)
    with paddle.no_grad():
        weight = model.classifier.weight
        weight.set_value(paddle.to_tensor(np.random.default_rng(0).normal(0, 40.0, weight.shape).astype("float32")))
        model.classifier.bias.set_value(paddle.to_tensor(np.array([bias], dtype="float32")))
    model.save_pretrained(str(folder))
    return model


def test_teacher_scores_are_the_teachers_outputs_in_pair_order(tmp_path):
    import paddle
    from paddlenlp.transformers import BertTokenizer

    script = _script()
    model = _varied_teacher(tmp_path / "teacher")
    model.eval()
    tok = BertTokenizer.from_pretrained(str(tmp_path / "teacher"))
    pairs = [
        ("a man plays a guitar", "a man plays the guitar loudly"),
        ("stocks fell", "a cat sleeps on the mat"),
        ("a plane is taking off", "a plane takes off"),
        ("the film was good", "rain"),
        ("x", "a b c d e f"),
    ]
    scores = script.teacher_scores(str(tmp_path / "teacher"), pairs, max_seq_length=32, batch_size=2)
    for (a, b), score in zip(pairs, scores):
        enc = tok(a, b, max_length=32, truncation=True)
        with paddle.no_grad():
            out = model(paddle.to_tensor([enc["input_ids"]]), token_type_ids=paddle.to_tensor([enc["token_type_ids"]]))
        np.testing.assert_allclose(score, float(out.numpy().reshape(-1)[0]), rtol=1e-4, atol=1e-4)
    assert np.ptp(scores) > 1e-2  # far above the tolerance: a pair scored in another's place fails


def test_transfer_set_is_scored_by_the_teacher_and_read_as_train_aug(tmp_path):
    script = _script()
    teacher = tmp_path / "teacher"
    _varied_teacher(teacher)
    out = tmp_path / "out"
    data = FIXTURES / "glue" / "STS-B"
    argv = ["--data_dir", str(data), "--teacher", str(teacher), "--out", str(out), "--neighbours", "2"]
    assert script.main(argv) == 0
    train = read_glue_examples(data, "STS-B", "train")
    aug = read_glue_examples(out, "STS-B", "train_aug")
    cache = json.loads((out / "transfer_scores.json").read_text(encoding="utf-8"))
    assert len(aug) == len(train) + len(cache["pairs"]) > len(train)
    assert [(e.text_a, e.text_b, e.label) for e in aug[: len(train)]] == [(e.text_a, e.text_b, e.label) for e in train]
    new = aug[len(train) :]
    assert [[e.text_a, e.text_b] for e in new] == cache["pairs"]
    fresh = script.teacher_scores(str(teacher), [tuple(p) for p in cache["pairs"]], 128, batch_size=3)
    assert 0.0 < fresh.min() and fresh.max() < 5.0 and np.ptp(fresh) > 1e-2
    np.testing.assert_allclose([e.label for e in new], fresh, atol=5e-4)
    # a second run reuses the cached scores (scoring again would fail) and writes the same file
    before = (out / "train_aug.tsv").read_bytes()

    def no_scoring(*args, **kwargs):
        raise AssertionError("the cached scores were not reused")

    script.teacher_scores = no_scoring
    assert script.main(argv) == 0
    assert (out / "train_aug.tsv").read_bytes() == before
    assert (out / "dev.tsv").read_bytes() == (data / "dev.tsv").read_bytes()


def test_bad_arguments_are_refused(tmp_path):
    script = _script()
    data = str(FIXTURES / "glue" / "STS-B")
    for argv in (
        ["--data_dir", data, "--teacher", "t", "--out", str(tmp_path), "--neighbours", "0"],
        ["--data_dir", data, "--teacher", "t", "--out", data],
        ["--task_name", "SST-2", "--data_dir", data, "--teacher", "t", "--out", str(tmp_path)],
        ["--task_name", "NOPE", "--data_dir", data, "--teacher", "t", "--out", str(tmp_path)],
    ):
        try:
            script.main(argv)
        except SystemExit as exit_:
            assert exit_.code == 2
        else:
            raise AssertionError(f"accepted {argv}")


def test_labels_are_clipped_to_the_task_range(tmp_path):
    script = _script()
    data = FIXTURES / "glue" / "STS-B"
    for bias, bound in ((10.0, 5.0), (-10.0, 0.0)):
        teacher, out = tmp_path / f"teacher{bias}", tmp_path / f"out{bias}"
        _varied_teacher(teacher, bias=bias)
        assert script.main(["--data_dir", str(data), "--teacher", str(teacher), "--out", str(out)]) == 0
        n = len(read_glue_examples(data, "STS-B", "train"))
        assert {e.label for e in read_glue_examples(out, "STS-B", "train_aug")[n:]} == {bound}
