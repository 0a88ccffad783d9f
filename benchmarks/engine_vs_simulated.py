"""A trained binarized student on a real GLUE dev set: simulated (fake-quant) model vs the packed
1-bit engine. Packs the student, runs both on every dev example (batch 1, each example at its own
length, no padding), and reports accuracy of both, prediction agreement, the largest relative
logit difference, per-example latency and file sizes; with ``--length_config C`` the same again
with both models under the length configuration C (Drop-and-Restore).

    python benchmarks/engine_vs_simulated.py --student runs/sst2_bibert --task_name SST-2 \\
        --data_dir ../shared/data/glue/SST-2 --max_seq_length 64 \\
        --out benchmarks/results/engine_vs_simulated_sst2.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import paddle
from paddlenlp.transformers import BertTokenizer

from paddle_binbert import engine, load_model
from paddle_binbert.data.glue import load_glue_features
from paddle_binbert.data.metrics import compute_glue_metrics, main_metric_name
from paddle_binbert.export import pack_model
from paddle_binbert.length_adaptive import length_adaptive_forward
from paddle_binbert.length_adaptive.search import parse_length_config
from paddle_binbert.models import quant_config_of


def folder_mib(path: str) -> float:
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", required=True, help="quantized student checkpoint folder (bibert/bit/bwn)")
    parser.add_argument("--task_name", required=True, help="GLUE task")
    parser.add_argument("--data_dir", required=True, help="GLUE task folder")
    parser.add_argument("--max_seq_length", type=int, default=128, help="truncation length")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    parser.add_argument(
        "--length_config",
        type=parse_length_config,
        default=None,
        help="also run both models with this Drop-and-Restore length configuration (e.g. 30-18-9-6-6-6)",
    )
    args = parser.parse_args()

    tokenizer = BertTokenizer.from_pretrained(args.student)
    spec_split = "dev_matched" if args.task_name.upper() == "MNLI" else "dev"
    feats = load_glue_features(args.data_dir, args.task_name, spec_split, tokenizer, args.max_seq_length)
    labels = np.array([f["labels"] for f in feats])
    student = load_model(args.student)
    student.eval()
    configs = [None] if args.length_config is None else [None, tuple(args.length_config)]
    metric = main_metric_name(args.task_name)
    qc = quant_config_of(student)
    lines = [
        f"Student `{args.student}` ({qc.name} {qc.bits_str}), {args.task_name} dev ({len(feats)} examples, "
        f"max_seq_length {args.max_seq_length}), batch 1, each example at its own length.",
        "",
        f"| model | length configuration | dev {metric} | median latency / example (ms) | files (MiB) |",
        "|---|---|---|---|---|",
    ]
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        packed_dir = os.path.join(tmp, "packed")
        pack_model(student, packed_dir, tokenizer=tokenizer)
        packed_mib = folder_mib(packed_dir)
        eng = engine.load(packed_dir)
        for config in configs:
            sim_logits, eng_logits, sim_t, eng_t = [], [], [], []
            for f in feats:
                ids = np.array([f["input_ids"]], dtype="int64")
                types = np.array([f["token_type_ids"]], dtype="int64")
                t0 = time.perf_counter()
                with paddle.no_grad():
                    out = length_adaptive_forward(
                        student, paddle.to_tensor(ids), paddle.to_tensor(types), length_config=config
                    )
                    s = out.logits.numpy()
                t1 = time.perf_counter()
                e = np.asarray(eng(ids, types, length_config=config))
                t2 = time.perf_counter()
                sim_logits.append(s[0])
                eng_logits.append(e[0])
                sim_t.append(t1 - t0)
                eng_t.append(t2 - t1)
            sim_logits, eng_logits = np.stack(sim_logits), np.stack(eng_logits)
            rel = np.abs(sim_logits - eng_logits).max() / max(np.abs(sim_logits).max(), 1e-12)
            sim_m = compute_glue_metrics(args.task_name, sim_logits, labels)[metric]
            eng_m = compute_glue_metrics(args.task_name, eng_logits, labels)[metric]
            agree = float((sim_logits.argmax(-1) == eng_logits.argmax(-1)).mean())
            label = "full" if config is None else "`" + "-".join(map(str, config)) + "`"
            lines += [
                f"| simulated student (PaddleNLP dygraph, fake-quant) | {label} | {100 * sim_m:.2f} | "
                f"{1000 * statistics.median(sim_t):.2f} | {folder_mib(args.student):.1f} |",
                f"| packed 1-bit engine ({eng.backend}) | {label} | {100 * eng_m:.2f} | "
                f"{1000 * statistics.median(eng_t):.2f} | {packed_mib:.2f} |",
            ]
            notes.append(
                f"{label}: prediction agreement {100 * agree:.2f}%; "
                f"largest |logit difference| / max |logit| = {rel:.2e}."
            )
    lines += ["", *notes]
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(table + "\n")


if __name__ == "__main__":
    main()
