"""A padded batch of mixed lengths == each sequence run on its own, to the bit.

The forward pass sends the B * L rows of a batch through each weight matrix together: the QKV GEMM
writes the sign bits of Q, K, V for every row (the attention gathers each head's bits from them) and
the row-local part of a layer (out-projection, residual + LayerNorm, FFN) runs in blocks of at most
128 rows; a batch of more than 512 rows runs as groups of whole sequences of about 512 rows each
(binbert_forward.cc: kRowBlock, kGroupRows). None of this may couple the sequences: every row of
a padded batch must give exactly the logits (and, for QA, the start / end logits at every real
position) of its sequence run alone without padding. Sizes: head size 12 (Q, K, V bits not
byte-aligned, float context), 16 and 64; batches of several row blocks and sequence groups (the
last ones partial); one and two threads.
"""

import numpy as np
import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification

from paddle_binbert import engine
from paddle_binbert.export import pack_model

from . import PRESETS, make_student, tiny_config

#: (hidden, heads, intermediate): head sizes 12, 16 and 64
SIZES = [(48, 4, 80), (64, 4, 96), (128, 2, 160)]


def _batch(lengths, seq_len: int, vocab: int, seed: int):
    """ids [B, seq_len] with sequence i holding lengths[i] real tokens, the rest padding (id 0,
    mask 0); token types 1 on the second half of each sequence."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), seq_len), dtype="int64")
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(1, vocab, n)
        types[i, n // 2 : n] = 1
        mask[i, :n] = 1
    return ids, types, mask


def _rows(out, qa: bool):
    """Outputs as [B, ...] numpy: classification logits, or QA's start and end logits stacked per row."""
    return np.stack(out, axis=1) if qa else out


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForQuestionAnswering])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"h{s[0]}x{s[1]}")
def test_padded_batch_equals_sequences_alone(ops, tmp_path, preset, cls, size):
    hidden, heads, inter = size
    student = make_student(preset, cls, config=tiny_config(hidden=hidden, heads=heads, inter=inter))
    packed = pack_model(student, tmp_path / "packed")
    qa = cls is BertForQuestionAnswering
    seq_len = 37
    # 30 sequences, 1110 rows: groups of 13 sequences (481 rows: four row blocks of 124, the last one
    # partial) and a last group of 4 sequences
    lengths = [37, 1, 20, 36, 9, 37, 2, 30, 17, 25] * 3
    ids, types, mask = _batch(lengths, seq_len, student.config.vocab_size, seed=hidden + heads)
    for threads in (1, 2):
        eng = engine.load(packed, num_threads=threads, backend="native")
        batch = _rows(eng(ids, types, mask), qa)
        for i, n in enumerate(lengths):
            alone = _rows(eng(ids[i : i + 1, :n], types[i : i + 1, :n], mask[i : i + 1, :n]), qa)[0]
            got = batch[i][..., :n] if qa else batch[i]
            np.testing.assert_array_equal(got, alone, err_msg=f"{threads} thread(s), sequence {i} ({n} tokens)")
        if threads == 1:
            first = batch
        else:
            np.testing.assert_array_equal(batch, first, err_msg="2 threads != 1 thread")


@pytest.mark.parametrize("preset", ["bibert", "bit"])
@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForQuestionAnswering])
def test_length_configuration_batch_equals_its_parts(ops, tmp_path, preset, cls):
    """Drop-and-Restore inside the kernels on a batch of several sequence groups == the same batch
    run in two parts (token selection is per sequence)."""
    student = make_student(preset, cls, config=tiny_config(hidden=64, heads=4, inter=96))
    eng = engine.load(pack_model(student, tmp_path / "packed"), num_threads=2, backend="native")
    qa = cls is BertForQuestionAnswering
    lengths = [40, 3, 25, 40, 12, 33] * 4  # 24 sequences of 40 positions: groups of 12
    ids, types, mask = _batch(lengths, 40, student.config.vocab_size, seed=7)
    config = (30, 17)
    whole = _rows(eng(ids, types, mask, length_config=config), qa)
    for part in (slice(0, 7), slice(7, 24)):
        got = _rows(eng(ids[part], types[part], mask[part], length_config=config), qa)
        np.testing.assert_array_equal(whole[part], got, err_msg=f"sequences {part}")
