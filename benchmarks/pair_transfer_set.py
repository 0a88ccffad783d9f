"""A transfer set for a GLUE sentence-pair task: the training pairs plus TF-IDF neighbour pairs of
the training sentences, scored by the FP teacher (a diagnostic of issue 23: are STS-B's binarized
students short of data?).

TinyBERT's augmentation (``paddle_binbert.data.augment``) needs a masked-LM head and GloVe vectors,
neither of which exists here (all-MiniLM-L6-v2 ships no MLM head). This script makes new *pairs* of
natural sentences instead: every distinct training sentence is paired with up to ``--neighbours`` of
its ``--neighbours + 3`` nearest other training sentences by cosine similarity of TF-IDF vectors (word uni- and bigrams,
sublinear tf; scikit-learn), skipping itself, sentences with the same words, case-insensitive duplicates and the pairs
already in the training file; unordered duplicates are dropped. Each new pair's label is the teacher's
prediction, clipped to the task's range ([0, 5] for STS-B): distillation learns from the teacher's
outputs anyway, and the label column keeps the file readable by ``read_glue_examples``.

Writes ``OUT/train.tsv`` and ``OUT/dev.tsv`` (copies) and ``OUT/train_aug.tsv`` (the training rows,
then the new rows, in train.tsv's columns), so that ``task_distill.py --data_dir OUT --aug_train``
trains on it. The teacher's scores are kept in ``OUT/transfer_scores.json`` (with the pairs, the
teacher folder, its weights' size and modification time, and the input length): a rerun with the same
inputs writes the TSV without scoring again (scoring itself is not resumable; it takes about 20
minutes on one core for STS-B).

    python benchmarks/pair_transfer_set.py --task_name STS-B --data_dir ../shared/data/glue/STS-B \
        --teacher ../runs/stsb_teacher --out ../runs/stsb_transfer --neighbours 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from typing import List, Sequence, Set, Tuple

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from paddle_binbert.data.glue import STSB_MAX_SCORE, STSB_MIN_SCORE, get_task_spec, read_tsv_rows  # noqa: E402
from paddle_binbert.io_utils import write_json_atomic, write_text_atomic  # noqa: E402

Pair = Tuple[str, str]


def neighbour_pairs(sentences: Sequence[str], existing: Set[Pair], k: int) -> List[Pair]:
    """Each sentence with up to ``k`` of its ``k + 3`` nearest others by TF-IDF cosine similarity (word 1-2 grams,
    sublinear tf), without itself, sentences with the same TF-IDF vector (the same words), case-insensitive
    duplicates and the ``existing`` pairs (either order); each unordered pair once, sorted."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import NearestNeighbors

    uniq = sorted(set(sentences))
    if len(uniq) < 2 or k <= 0:
        return []
    vectors = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(uniq)
    search = NearestNeighbors(n_neighbors=min(len(uniq), k + 3), metric="cosine").fit(vectors)
    distance, index = search.kneighbors(vectors)
    pairs: Set[Pair] = set()
    for i, sentence in enumerate(uniq):
        taken = 0
        for d, j in zip(distance[i], index[i]):
            other = uniq[j]
            if (
                j == i
                or d < 1e-6
                or other.lower() == sentence.lower()
                or (sentence, other) in existing
                or (other, sentence) in existing
            ):
                continue
            pairs.add((sentence, other) if sentence < other else (other, sentence))
            taken += 1
            if taken == k:
                break
    return sorted(pairs)


def teacher_scores(teacher: str, pairs: Sequence[Pair], max_seq_length: int, batch_size: int = 64) -> np.ndarray:
    """The teacher's regression output for every pair (length-sorted batches, no gradient)."""
    import paddle
    from paddlenlp.transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(teacher)
    model = AutoModelForSequenceClassification.from_pretrained(teacher)
    model.eval()
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    scores = np.zeros(len(pairs), dtype=np.float32)
    start = time.time()
    with paddle.no_grad():
        for b in range(0, len(order), batch_size):
            ids = order[b : b + batch_size]
            enc = tokenizer(
                [pairs[i][0] for i in ids],
                [pairs[i][1] for i in ids],
                max_length=max_seq_length,
                truncation=True,
                padding=True,
                return_tensors="pd",
                return_attention_mask=True,
            )
            logits = model(
                input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"], attention_mask=enc["attention_mask"]
            )
            scores[ids] = logits.numpy().reshape(-1)
            if (b // batch_size) % 50 == 0:
                print(f"scored {b + len(ids)} / {len(pairs)} pairs, {time.time() - start:.0f} s", flush=True)
    return scores


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task_name", default="STS-B", help="a GLUE regression pair task (STS-B)")
    parser.add_argument("--data_dir", required=True, help="folder with the task's train.tsv and dev.tsv")
    parser.add_argument("--teacher", required=True, help="the FP teacher checkpoint folder that scores the new pairs")
    parser.add_argument("--out", required=True, help="output folder (train.tsv, dev.tsv, train_aug.tsv)")
    parser.add_argument("--neighbours", type=int, default=3, help="nearest neighbours per sentence (default 3)")
    parser.add_argument("--max_seq_length", type=int, default=128, help="teacher input length (default 128)")
    args = parser.parse_args(argv)

    try:
        spec = get_task_spec(args.task_name)
    except (KeyError, ValueError) as err:
        parser.error(str(err))
    if not spec.is_regression or not spec.is_pair:
        parser.error(f"--task_name {args.task_name}: this script makes scored pairs for a regression pair task")
    if args.neighbours < 1:
        parser.error(f"--neighbours must be at least 1, got {args.neighbours}")
    if os.path.abspath(args.out) == os.path.abspath(args.data_dir):
        parser.error("--out must differ from --data_dir (the copies of train.tsv and dev.tsv go to --out)")
    train = os.path.join(args.data_dir, "train.tsv")
    rows = read_tsv_rows(train)
    if len(rows) < 2:
        parser.error(f"{train}: expected a header and at least one row")
    header, rows = rows[0], rows[1:]
    a_col, b_col = (header.index(c) for c in spec.text_columns)
    existing = {(r[a_col], r[b_col]) for r in rows}
    pairs = neighbour_pairs([r[a_col] for r in rows] + [r[b_col] for r in rows], existing, args.neighbours)
    print(f"{len(rows)} training pairs, {len(pairs)} new neighbour pairs", flush=True)

    if not pairs:
        parser.error(f"{train}: no new pairs (every neighbour is a duplicate or already a training pair)")

    os.makedirs(args.out, exist_ok=True)
    cache = os.path.join(args.out, "transfer_scores.json")
    weights = os.path.join(args.teacher, "model_state.pdparams")
    key = {
        "teacher": os.path.abspath(args.teacher),
        "teacher_weights": [os.path.getsize(weights), os.path.getmtime(weights)] if os.path.isfile(weights) else None,
        "max_seq_length": args.max_seq_length,
        "pairs": [list(p) for p in pairs],
    }
    cached = {}
    if os.path.isfile(cache):
        with open(cache, encoding="utf-8") as f:
            cached = json.load(f)
    if {k: cached.get(k) for k in key} == key:
        scores = np.asarray(cached["scores"], dtype=np.float32)
    else:
        scores = teacher_scores(args.teacher, pairs, args.max_seq_length)
        write_json_atomic(cache, dict(key, scores=scores.tolist()))
    quantiles = np.round(np.quantile(scores, [0, 0.1, 0.5, 0.9, 1]), 3)
    print("teacher scores, quantiles 0 / 10 / 50 / 90 / 100 %:", quantiles)

    label = header.index(spec.label_column)
    lines = ["\t".join(header)] + ["\t".join(r) for r in rows]
    for n, ((a, b), s) in enumerate(zip(pairs, np.clip(scores, STSB_MIN_SCORE, STSB_MAX_SCORE))):
        row = ["none"] * len(header)
        row[0] = str(len(rows) + n)
        row[a_col], row[b_col], row[label] = a, b, f"{float(s):.3f}"
        lines.append("\t".join(row))
    for name in ("train.tsv", "dev.tsv"):  # contents only: the source may be read-only
        shutil.copyfile(os.path.join(args.data_dir, name), os.path.join(args.out, name))
    write_text_atomic(os.path.join(args.out, "train_aug.tsv"), "\n".join(lines) + "\n")
    print(f"wrote {os.path.join(args.out, 'train_aug.tsv')}: {len(lines) - 1} rows", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
