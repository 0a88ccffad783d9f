"""Binarized students learn: task_distill.py on a small separable task, against a minimal loop.

The task: SST-2-format sentences of 2-14 filler words with one class word ("good" / "bad") at a
random place, so the lengths vary as in real data (length-grouped batches are then of one length,
the situation that once ruined the BiT student's learned scales, issue 23). A tiny FP teacher is
trained to near 100% first. The students must end far above chance, and the command line must
learn at least as fast as a plain loop (random batches, one learning rate, no clipping) with the
same teacher, preset, loss and budget.
"""

import os
import random

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from paddlenlp.transformers import BertForSequenceClassification, BertTokenizer

from paddle_binbert import QuantConfig, quantize_model
from paddle_binbert.data.glue import glue_collator, load_glue_features
from paddle_binbert.distill.task_distill import main

from ..tiny import tiny_bert_config

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")
CLASS_WORDS = ("bad", "good")
STEPS = 60
BATCH = 16


def _write_task(folder, n_train=480, n_dev=96, seed=0):
    rng = random.Random(seed)
    vocab = [w.strip() for w in open(os.path.join(FIXTURES, "vocab.txt"), encoding="utf-8")]
    fillers = [w for w in vocab if w.isalpha() and len(w) > 3 and w not in CLASS_WORDS][:300]
    os.makedirs(folder, exist_ok=True)
    for name, n in (("train.tsv", n_train), ("dev.tsv", n_dev)):
        lines = ["sentence\tlabel"]
        for _ in range(n):
            label = rng.randrange(2)
            words = rng.sample(fillers, rng.randint(2, 14))
            words.insert(rng.randrange(len(words) + 1), CLASS_WORDS[label])
            lines.append(f"{' '.join(words)}\t{label}")
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")


def _accuracy(model, feats, collate):
    model.eval()
    correct = 0
    for i in range(0, len(feats), 32):
        batch = collate(feats[i : i + 32])
        with paddle.no_grad():
            logits = model(batch["input_ids"], token_type_ids=batch["token_type_ids"])
        correct += int((logits.argmax(-1).numpy() == batch["labels"].numpy()).sum())
    return correct / len(feats)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """(data folder, teacher folder, teacher dev accuracy) of the separable task."""
    root = tmp_path_factory.mktemp("separable")
    data = str(root / "data")
    _write_task(data)
    tok = BertTokenizer(os.path.join(FIXTURES, "vocab.txt"))
    config = tiny_bert_config(
        vocab_size=len(tok.vocab), hidden_size=64, intermediate_size=128, max_position_embeddings=64, num_labels=2
    )
    config.use_cache = False
    paddle.seed(0)
    teacher = BertForSequenceClassification(config)
    train = load_glue_features(data, "SST-2", "train", tok, 32)
    dev = load_glue_features(data, "SST-2", "dev", tok, 32)
    collate = glue_collator(tok)
    opt = paddle.optimizer.AdamW(learning_rate=1e-3, parameters=teacher.parameters())
    order = np.random.RandomState(0).permutation(len(train))
    teacher.train()
    for step in range(90):
        idx = order[(step * BATCH) % len(train) :][:BATCH]
        batch = collate([train[i] for i in idx])
        logits = teacher(batch["input_ids"], token_type_ids=batch["token_type_ids"])
        F.cross_entropy(logits, batch["labels"]).backward()
        opt.step()
        opt.clear_grad()
    folder = str(root / "teacher")
    teacher.save_pretrained(folder)
    tok.save_pretrained(folder)
    return data, folder, _accuracy(teacher, dev, collate)


def _minimal_loop(data, teacher_dir, preset, lr):
    """The reference loop: quantize a copy of the teacher, SCE + summed hidden MSE, AdamW with one
    learning rate for every parameter, 10% warmup then linear decay, random batches."""
    tok = BertTokenizer.from_pretrained(teacher_dir)
    teacher = BertForSequenceClassification.from_pretrained(teacher_dir)
    teacher.eval()
    paddle.seed(1)
    student = quantize_model(
        BertForSequenceClassification.from_pretrained(teacher_dir), QuantConfig.from_preset(preset)
    )
    train = load_glue_features(data, "SST-2", "train", tok, 32)
    dev = load_glue_features(data, "SST-2", "dev", tok, 32)
    collate = glue_collator(tok)
    sched = paddle.optimizer.lr.LinearWarmup(paddle.optimizer.lr.PolynomialDecay(lr, STEPS, 0.0), STEPS // 10, 0.0, lr)
    opt = paddle.optimizer.AdamW(learning_rate=sched, parameters=student.parameters(), weight_decay=0.01)
    order = np.random.RandomState(1).permutation(len(train))
    student.train()
    for step in range(STEPS):
        idx = order[(step * BATCH) % len(train) :][:BATCH]
        b = collate([train[i] for i in idx])
        kw = dict(token_type_ids=b["token_type_ids"], attention_mask=b["attention_mask"], output_hidden_states=True)
        with paddle.no_grad():
            t_logits, t_hidden = teacher(b["input_ids"], **kw)[:2]
        s_logits, s_hidden = student(b["input_ids"], **kw)[:2]
        target = F.softmax(t_logits, -1)
        loss = (-target * F.log_softmax(s_logits, -1)).mean()
        loss = loss + sum(F.mse_loss(s, t) for s, t in zip(s_hidden, t_hidden))
        loss.backward()
        opt.step()
        opt.clear_grad()
        sched.step()
    return _accuracy(student, dev, collate)


def _cli(data, teacher_dir, out, method, lr, extra=()):
    args = [
        "--teacher_path", teacher_dir, "--task_name", "SST-2", "--data_dir", data, "--max_seq_length", "32",
        "--batch_size", str(BATCH), "--learning_rate", str(lr), "--max_steps", str(STEPS),
        "--eval_steps", str(STEPS), "--logging_steps", "10", "--seed", "1", "--method", method,
        "--output_dir", str(out), *extra,
    ]  # fmt: skip
    return main(args)["student"]["acc"]


def test_teacher_of_the_separable_task_is_good(task):
    assert task[2] >= 0.95


def test_bit_student_learns_as_fast_as_the_minimal_loop(task, tmp_path):
    data, teacher_dir, _ = task
    cli = _cli(data, teacher_dir, tmp_path / "bit", "bit", 1e-3, ["--clip_lr", "1e-3"])
    loop = _minimal_loop(data, teacher_dir, "bit", 1e-3)
    assert cli >= 0.85, f"task_distill.py --method bit ended at {cli:.3f}"
    assert cli >= loop - 0.05, f"task_distill.py {cli:.3f} vs minimal loop {loop:.3f}"


def test_bibert_student_learns(task, tmp_path):
    data, teacher_dir, _ = task
    acc = _cli(data, teacher_dir, tmp_path / "bibert", "bibert", 1e-3)
    assert acc >= 0.8, f"task_distill.py --method bibert ended at {acc:.3f}"
