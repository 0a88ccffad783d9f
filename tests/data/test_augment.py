"""Tests of TinyBERT data augmentation (paddle_binbert.data.augment) with a tiny random MLM teacher."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest

from paddle_binbert.data.augment import (
    DataAugmenter,
    GloveFormatError,
    augment_glue_file,
    is_candidate_word,
    load_glove,
    load_mlm,
)
from paddle_binbert.data.glue import get_task_spec, read_glue_examples

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO = Path(__file__).resolve().parents[2]
# words the fixture vocab splits into several pieces (e.g. snow ##ed)
EXTRA_WORDS = ["snowed", "stageer", "musicly", "movieing", "dogsing"]


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory) -> Path:
    """A tiny random BertForMaskedLM + tokenizer saved like a real checkpoint."""
    from paddlenlp.transformers import BertConfig, BertForMaskedLM, BertTokenizer

    path = tmp_path_factory.mktemp("mlm")
    tokenizer = BertTokenizer(str(FIXTURES / "vocab.txt"), do_lower_case=True)
    paddle.seed(1234)
    config = BertConfig(vocab_size=len(tokenizer.vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2)
    model = BertForMaskedLM(config)
    # a larger decoder bias spread makes the top-K order robust to float noise between batchings
    model.cls.predictions.decoder_bias.set_value(paddle.randn([config.vocab_size]) * 3.0)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def glove_file(tmp_path_factory, mlm_dir) -> Path:
    """Random 8-d vectors for every word of the fixture vocab and some multi-piece words."""
    path = tmp_path_factory.mktemp("glove") / "glove.txt"
    lines = (FIXTURES / "vocab.txt").read_text(encoding="utf-8").split("\n")
    vocab = [w for w in lines if w and not w.startswith(("[", "##"))]
    rng = np.random.default_rng(0)
    lines = [f"{w} " + " ".join(f"{v:.5f}" for v in rng.normal(size=8)) for w in vocab + EXTRA_WORDS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def augmenter(mlm_dir, glove_file) -> DataAugmenter:
    model, tokenizer = load_mlm(str(mlm_dir))
    return DataAugmenter(model, tokenizer, load_glove(str(glove_file)), M=5, p=0.4, batch_size=4)


def _brute_force_mlm(model, tokenizer, words, index, M, show_original=True):
    """Top-M of the masked-LM logits of word `index`, by a plain unbatched forward and numpy sort."""
    pieces = [tokenizer.wordpiece_tokenizer.tokenize(w) for w in words]
    flat = [p for ps in pieces for p in ps]
    pos = sum(len(ps) for ps in pieces[:index])
    masked = list(flat)
    masked[pos] = "[MASK]"
    tokens = ["[CLS]"] + masked + ["[SEP]"]
    types = [0] * len(tokens)
    if show_original:
        tokens += flat + ["[SEP]"]
        types += [1] * (len(flat) + 1)
    ids = paddle.to_tensor([tokenizer.convert_tokens_to_ids(tokens)])
    with paddle.no_grad():
        logits = model(ids, token_type_ids=paddle.to_tensor([types]), return_dict=False)
        logits = (logits[0] if isinstance(logits, (tuple, list)) else logits).numpy()[0, pos + 1]
    top = np.argsort(-logits)[:M]
    out = []
    for t in tokenizer.convert_ids_to_tokens([int(i) for i in top]):
        if not (t.startswith("##") or (t.startswith("[") and t.endswith("]"))):
            out.append(t)
    return out


def _brute_force_neighbours(glove_file: Path, word: str, M: int):
    words, vecs = [], []
    for line in glove_file.read_text(encoding="utf-8").splitlines():
        parts = line.split(" ")
        words.append(parts[0])
        vecs.append([float(v) for v in parts[1:]])
    mat = np.asarray(vecs, dtype=np.float64)
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    i = words.index(word)
    sims = mat @ mat[i]
    order = [j for j in np.argsort(-sims, kind="stable") if j != i]
    return [words[j] for j in order[:M]]


def test_candidate_words() -> None:
    assert is_candidate_word("movie") and is_candidate_word("Movie")
    assert not is_candidate_word("the") and not is_candidate_word(",") and not is_candidate_word("1998")


def test_mlm_candidates_are_the_model_top_k(augmenter) -> None:
    sentence = "the film is a moving and heartwarming story of friendship"
    words, cands = augmenter.candidates(sentence)
    assert words == sentence.split()
    single = [i for i, w in enumerate(words)
              if is_candidate_word(w) and len(augmenter.tokenizer.wordpiece_tokenizer.tokenize(w)) == 1]
    assert single, "the test sentence needs single-piece candidate words"
    for i in single:
        expected = _brute_force_mlm(augmenter.model, augmenter.tokenizer, words, i, augmenter.M)
        assert cands.get(i, []) == expected
    # stop words and punctuation never get candidates
    assert all(is_candidate_word(words[i]) for i in cands)


def test_mlm_without_original_context(mlm_dir) -> None:
    model, tokenizer = load_mlm(str(mlm_dir))
    aug = DataAugmenter(model, tokenizer, None, M=6, show_original=False)
    words, cands = aug.candidates("a great film")
    for i in cands:
        assert cands[i] == _brute_force_mlm(model, tokenizer, words, i, 6, show_original=False)


def test_glove_candidates_are_nearest_neighbours(augmenter, glove_file) -> None:
    sentence = "it snowed on the stageer , musicly and movieing"
    words, cands = augmenter.candidates(sentence)
    multi = [i for i, w in enumerate(words) if len(augmenter.tokenizer.wordpiece_tokenizer.tokenize(w)) > 1]
    assert multi
    for i in multi:
        assert cands[i] == _brute_force_neighbours(glove_file, words[i], augmenter.M)
        assert words[i] not in cands[i]


def test_sampling_is_deterministic_and_uses_candidates(augmenter) -> None:
    sentence = "a gorgeous , witty , seductive movie ."
    out1 = augmenter.augment(sentence, n=20, seed=7)
    out2 = augmenter.augment(sentence, n=20, seed=7)
    assert out1 == out2 and out1[0] == sentence
    assert len(set(out1)) == len(out1) and 1 < len(out1) <= 21
    words, cands = augmenter.candidates(sentence)
    for new in out1[1:]:
        new_words = new.split(" ")
        assert len(new_words) == len(words)
        for i, (a, b) in enumerate(zip(words, new_words)):
            assert a == b or b in cands[i]
    # p = 0 never changes a word: only the original remains
    zero = DataAugmenter(augmenter.model, augmenter.tokenizer, augmenter.word_vectors, M=5, p=0.0)
    assert zero.augment(sentence, n=10, seed=1) == [sentence]


def test_sampling_replacement_rate() -> None:
    """Each candidate position is replaced with probability p (checked against a binomial bound)."""

    class _Stub(DataAugmenter):
        def __init__(self):  # no model needed for sampling
            self.p = 0.4

    aug = _Stub()
    words = [f"w{i}" for i in range(50)]
    cands = {i: [f"c{i}"] for i in range(50)}
    new = aug.sample(words, cands, 200, random.Random("x"))
    changed = sum(a != b for s in new for a, b in zip(words, s.split()))
    n = 50 * len(new)
    assert abs(changed / n - 0.4) < 4 * (0.4 * 0.6 / n) ** 0.5


def _copy_task(tmp_path: Path, task: str) -> Path:
    dst = tmp_path / task
    shutil.copytree(FIXTURES / "glue" / task, dst)
    return dst


@pytest.mark.parametrize("task", ["SST-2", "MRPC", "CoLA", "STS-B"])
def test_glue_file_round_trip(augmenter, tmp_path, task) -> None:
    glue_dir = _copy_task(tmp_path, task)
    stats = augment_glue_file(augmenter, str(glue_dir), task, N=4, seed=3, max_examples=3, progress=False)
    assert stats.output == str(glue_dir / "train_aug.tsv") and os.path.isfile(stats.output)
    assert not os.path.exists(stats.output + ".tmp") and not os.path.exists(stats.output + ".tmp.progress")
    original = read_glue_examples(str(glue_dir), task, "train")[:3]
    augmented = read_glue_examples(str(glue_dir), task, "train_aug")  # the reader --aug_train uses
    assert len(augmented) == stats.rows_written > len(original)
    spec = get_task_spec(task)
    # rows come grouped by source example, the original row first; labels are copied
    starts = {(ex.text_a, ex.text_b): k for k, ex in enumerate(original)}
    group = -1
    for row in augmented:
        key = (row.text_a, row.text_b)
        if key in starts and starts[key] == group + 1:
            group += 1
            continue
        ex = original[group]
        assert group >= 0 and row.label == ex.label
        if spec.is_pair:  # one column changes, the other is the original
            assert row.text_a == ex.text_a or row.text_b == ex.text_b
    assert group == len(original) - 1
    keys = [(e.text_a, e.text_b) for e in augmented]
    assert len(keys) == len(set(keys))


def test_glue_file_refuses_to_overwrite_its_input(augmenter, tmp_path) -> None:
    glue_dir = _copy_task(tmp_path, "SST-2")
    before = (glue_dir / "train.tsv").read_bytes()
    for spelling in (glue_dir / "train.tsv", glue_dir / "." / "train.tsv"):
        with pytest.raises(ValueError, match="is the input"):
            augment_glue_file(augmenter, str(glue_dir), "SST-2", output=str(spelling), N=2, progress=False)
    assert (glue_dir / "train.tsv").read_bytes() == before
    assert sorted(p.name for p in glue_dir.iterdir() if "tmp" in p.name) == []


def test_glue_file_is_deterministic_and_resumable(augmenter, tmp_path, monkeypatch) -> None:
    glue_dir = _copy_task(tmp_path, "SST-2")
    first = augment_glue_file(augmenter, str(glue_dir), "sst2", output=str(tmp_path / "a.tsv"), N=5,
                              max_examples=6, progress=False, examples_per_step=2)
    # interrupt a second run after two blocks, then resume it
    calls = {"n": 0}
    real = DataAugmenter.candidates_batch

    def flaky(self, sentences):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, sentences)

    monkeypatch.setattr(DataAugmenter, "candidates_batch", flaky)
    out = tmp_path / "b.tsv"
    with pytest.raises(KeyboardInterrupt):
        augment_glue_file(augmenter, str(glue_dir), "SST-2", output=str(out), N=5, max_examples=6,
                          progress=False, examples_per_step=2)
    assert not out.exists() and Path(str(out) + ".tmp").exists()
    monkeypatch.setattr(DataAugmenter, "candidates_batch", real)
    second = augment_glue_file(augmenter, str(glue_dir), "SST-2", output=str(out), N=5, max_examples=6,
                               progress=False, examples_per_step=3)
    assert second.resumed_from == 4
    assert out.read_bytes() == (tmp_path / "a.tsv").read_bytes()
    assert second.rows_written == first.rows_written


def test_glove_format_errors(tmp_path) -> None:
    good = tmp_path / "g.txt"
    good.write_text("2 3\nhello 1 0 0\nworld 0 1 0\n", encoding="utf-8")
    vecs = load_glove(str(good))
    assert vecs.words == ["hello", "world"] and vecs.vectors.shape == (2, 3)
    bad = tmp_path / "bad.txt"
    bad.write_text("hello 1 0 0\nworld 0 1\n", encoding="utf-8")
    with pytest.raises(GloveFormatError, match=r"bad\.txt, line 2: expected a word followed by 3 numbers"):
        load_glove(str(bad))
    bad.write_text("hello 1 0 0\nworld 0 x 1\n", encoding="utf-8")
    with pytest.raises(GloveFormatError, match=r"line 2: expected 3 numbers after the word 'world', got 'x'"):
        load_glove(str(bad))
    spaced = tmp_path / "spaced.txt"
    spaced.write_text("a 1 0\n. . . 0 1\n", encoding="utf-8")
    assert load_glove(str(spaced)).words == ["a", ". . ."]
    with pytest.raises(FileNotFoundError):
        load_glove(str(tmp_path / "missing.txt"))


def test_load_mlm_refuses_a_model_without_head(tmp_path) -> None:
    from paddlenlp.transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16)).save_pretrained(str(tmp_path))
    with pytest.raises(ValueError, match="no masked-LM head"):
        load_mlm(str(tmp_path))


def test_cli(mlm_dir, glove_file, tmp_path) -> None:
    glue_dir = _copy_task(tmp_path, "QNLI")
    script = REPO / "examples" / "data_augmentation.py"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, env=env)
    assert help_text.returncode == 0
    for flag in ("--pretrained_bert_model", "--glove_embs", "--glue_dir", "--task_name", "--N", "--M", "--p",
                 "--max_examples", "--output"):
        assert flag in help_text.stdout
    bad = subprocess.run([sys.executable, str(script), "--pretrained_bert_model", str(mlm_dir), "--glue_dir",
                          str(glue_dir), "--task_name", "NOPE"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "Unknown GLUE task" in bad.stderr
    out = tmp_path / "aug.tsv"
    run = subprocess.run(
        [sys.executable, str(script), "--pretrained_bert_model", str(mlm_dir), "--glove_embs", str(glove_file),
         "--glue_dir", str(glue_dir), "--task_name", "QNLI", "--N", "3", "--M", "4", "--max_examples", "2",
         "--output", str(out), "--no_progress"],
        capture_output=True, text=True, env=env,
    )
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout and out.exists()
    header = out.read_text(encoding="utf-8").splitlines()[0]
    assert header == (glue_dir / "train.tsv").read_text(encoding="utf-8").splitlines()[0]
