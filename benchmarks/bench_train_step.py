"""Time one training step (forward + backward + AdamW) of the FP model and of every preset's
student, in one run, on random data: MiniLM-L6 shape (6 layers, hidden 384, 12 heads, FFN 1536),
batch 32, length 64 by default.

    [OMP_NUM_THREADS=2] [PADDLE_BINBERT_MKL_AVX2=1] python benchmarks/bench_train_step.py [--steps 10] \
        [--batch_size 32] [--seq_len 64] [--out benchmarks/results/train_step.md]

Prints a markdown table (median and min step time, ratio to FP) and writes it to
benchmarks/results/train_step.md. Presets are measured round-robin, one step each per round,
so that load from other processes hits them alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import paddle
import paddle.nn.functional as F
from paddlenlp.transformers import BertConfig, BertForSequenceClassification

from paddle_binbert import QuantConfig, available_presets, quantize_model
from paddle_binbert.machine import cpu_name


def build(preset: str, config: BertConfig) -> tuple:
    paddle.seed(0)
    model = BertForSequenceClassification(config)
    if preset != "fp-paddlenlp":
        quantize_model(model, preset)
    model.train()
    opt = paddle.optimizer.AdamW(learning_rate=1e-4, parameters=model.parameters(), weight_decay=0.01)
    return model, opt


def step(model, opt, ids, types, labels) -> float:
    start = time.perf_counter()
    loss = F.cross_entropy(model(ids, token_type_ids=types), labels)
    loss.backward()
    opt.step()
    opt.clear_grad()
    float(loss)  # synchronise
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model (after 2 warm-up steps)")
    parser.add_argument("--batch_size", type=int, default=32, help="examples per step")
    parser.add_argument("--seq_len", type=int, default=64, help="tokens per example")
    parser.add_argument("--out", default="benchmarks/results/train_step.md", help="where to write the table")
    args = parser.parse_args()

    config = BertConfig(
        vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
    )
    paddle.seed(1)
    ids = paddle.randint(1, 30522, [args.batch_size, args.seq_len])
    types = paddle.zeros_like(ids)
    labels = paddle.randint(0, 2, [args.batch_size])

    names = ["fp-paddlenlp"] + available_presets()
    models = {name: build(name, config) for name in names}
    times = {name: [] for name in names}
    for _ in range(2):
        for name in names:
            step(*models[name], ids, types, labels)
    for i in range(args.steps):
        for name in names:
            times[name].append(step(*models[name], ids, types, labels))
        print(f"round {i + 1}/{args.steps}: " + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in names), flush=True)

    base = statistics.median(times["fp-paddlenlp"])
    lines = [
        f"Training step (forward + backward + AdamW), MiniLM-L6 shape, batch {args.batch_size}, "
        f"length {args.seq_len}, {args.steps} steps each; {os.cpu_count()} CPUs visible ({cpu_name()}); "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset (Paddle uses 1 thread)')}; MKL kernels: "
        + ("AVX2 (MKL_DEBUG_CPU_TYPE=5)" if os.environ.get("MKL_DEBUG_CPU_TYPE") == "5" else "MKL's own choice")
        + ".",
        "",
        "| model | bits W-E-A | median step (s) | min step (s) | ratio to FP |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        bits = "32-32-32" if name == "fp-paddlenlp" else QuantConfig.from_preset(name).bits_str
        med = statistics.median(times[name])
        lines.append(f"| {name} | {bits} | {med:.3f} | {min(times[name]):.3f} | {med / base:.2f}x |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(table + "\n")


if __name__ == "__main__":
    main()
