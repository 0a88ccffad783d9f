#!/usr/bin/env python
"""The paddle_binbert demo: a shipped 1-bit BERT, then (with --train) one trained here.

Part 1 (always, about 1-2 minutes after the install): the 1-1-1 SST-2 student committed at
examples/models/sst2-1bit (a packed folder: 1-bit weights, embeddings and activations)
1. classifies a few sentences with Taskflow;
2. scores all 872 SST-2 dev sentences (bundled in examples/data/sst2_sample);
3. times it per sentence at batch 1 on the packed 1-bit engine against the same network computed
   in Paddle float32 (the engine's simulated backend: the same packed file, sign bits unpacked to
   +-1 floats) and against a float32 BERT of the same shape (MiniLM-L6) in Paddle.

Part 2 (--train, about 13 minutes on 2 cores): fine-tunes the bundled all-MiniLM-L6-v2 as the FP32
teacher on the 2,000-sentence SST-2 sample and distils a BiT 1-1-1 student from it with
examples/task_distill.py, then prints both dev accuracies and sizes.

    python examples/demo.py [--model examples/models/sst2-1bit] [--train] [--output_dir runs/demo]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "data", "sst2_sample")
SHIPPED = os.path.join(HERE, "models", "sst2-1bit")
EXAMPLES = [
    "a gripping, funny and moving film",
    "the plot is a tired mess and the acting is worse",
    "not bad at all",
    "I wanted to like it, but it never comes alive",
]


def read_dev(path: str):
    """(sentences, labels) of an SST-2 dev.tsv."""
    from paddle_binbert.data.glue import read_glue_examples

    examples = read_glue_examples(path, "SST-2", "dev")
    return [e.text_a for e in examples], np.array([e.label for e in examples])


def median_ms(fn, inputs, repeats: int = 1) -> float:
    """Median wall time of ``fn(x)`` over ``inputs`` in milliseconds (one warm-up call first)."""
    fn(inputs[0])
    times = []
    for x in inputs:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def shipped_model_part(model_dir: str, timing_sentences: int, threads: int) -> None:
    import paddle
    from paddlenlp.transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from paddle_binbert import Taskflow, engine

    print(f"=== 1. the shipped 1-bit SST-2 student: {os.path.relpath(model_dir)} ===", flush=True)
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    size = sum(os.path.getsize(os.path.join(model_dir, n)) for n in os.listdir(model_dir))
    print(
        f"{config['num_hidden_layers']} layers, hidden {config['hidden_size']}, 1-bit weights / embeddings / "
        f"activations; folder {size / 2**20:.2f} MiB",
        flush=True,
    )
    classify = Taskflow("text_classification", task_path=model_dir, batch_size=32, max_length=64)
    for result in classify(EXAMPLES):
        top = result["predictions"][0]
        label = config.get("id2label", {}).get(str(top["label"]), top["label"])
        print(f"  {label:>8} ({top['score']:.2f})  {result['text']}")

    sentences, labels = read_dev(SAMPLE)
    t0 = time.time()
    label_ids = {str(name): int(i) for i, name in config.get("id2label", {}).items()}  # name -> class id
    predicted = [label_ids.get(str(r["predictions"][0]["label"]), -1) for r in classify(sentences)]
    accuracy = 100 * float(np.mean(np.array(predicted) == labels))
    print(
        f"SST-2 dev accuracy (all {len(sentences)} sentences, Taskflow on the packed engine): {accuracy:.2f}% "
        f"({time.time() - t0:.1f} s)",
        flush=True,
    )

    tok = BertTokenizer.from_pretrained(model_dir)
    encoded = [tok(s, max_length=64, truncation=True) for s in sentences[:timing_sentences]]
    inputs = [
        (np.array([e["input_ids"]], dtype="int64"), np.array([e["token_type_ids"]], dtype="int64")) for e in encoded
    ]
    native = engine.load(model_dir, num_threads=threads)
    simulated = engine.load(model_dir, backend="simulated")  # Paddle ops: OMP_NUM_THREADS (set in main)
    fp32 = BertForSequenceClassification(BertConfig(**{k: v for k, v in config.items() if k != "architectures"}))
    fp32.eval()

    def run_fp32(x):
        with paddle.no_grad():
            fp32(paddle.to_tensor(x[0]), token_type_ids=paddle.to_tensor(x[1]))

    rows = [
        (f"packed 1-bit engine ({type(native).__name__})", median_ms(lambda x: native(x[0], x[1]), inputs)),
        ("same network in Paddle float32 (simulated backend)", median_ms(lambda x: simulated(x[0], x[1]), inputs)),
        ("float32 BERT of the same shape (Paddle dygraph)", median_ms(run_fp32, inputs)),
    ]
    print(
        f"latency per sentence, batch 1, median over the first {len(inputs)} dev sentences "
        f"({threads} threads for each):"
    )
    for i, (name, ms) in enumerate(rows):
        print(f"  {name:<52} {ms:8.2f} ms" + (f"  ({ms / rows[0][1]:.0f}x the engine's time)" if i else ""))


def run(script: str, args: list) -> None:
    cmd = [sys.executable, os.path.join(HERE, script), *args]
    print("\n$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def training_part(output_dir: str, student_epochs: float) -> None:
    from paddle_binbert.checkpoints import resolve_backbone

    print("\n=== 2. training a 1-bit student here (teacher fine-tuning + BiT distillation) ===", flush=True)
    start = time.time()
    backbone = resolve_backbone("minilm")
    teacher_dir = os.path.join(output_dir, "teacher")
    student_dir = os.path.join(output_dir, "bit")
    common = [
        "--task_name",
        "SST-2",
        "--data_dir",
        SAMPLE,
        "--max_seq_length",
        "64",
        "--batch_size",
        "32",
        "--logging_steps",
        "20",
        "--overwrite_output_dir",
    ]
    run(
        "run_glue.py",
        [
            "--model_name_or_path",
            backbone,
            "--output_dir",
            teacher_dir,
            "--learning_rate",
            "5e-5",
            "--num_train_epochs",
            "2",
            *common,
        ],
    )
    run(
        "task_distill.py",
        [
            "--teacher_path",
            teacher_dir,
            "--student_model_name_or_path",
            teacher_dir,
            "--output_dir",
            student_dir,
            "--method",
            "bit",
            "--learning_rate",
            "2e-4",
            "--clip_lr",
            "2e-4",
            "--num_train_epochs",
            str(student_epochs),
            "--eval_steps",
            "63",
            *common,
        ],
    )
    with open(os.path.join(student_dir, "results.json"), encoding="utf-8") as fh:
        res = json.load(fh)
    print("\n=== trained here: SST-2 sample (2,000 train / 872 dev), MiniLM-L6 ===")
    print(
        f"teacher (FP32)       dev accuracy {100 * res['teacher']['acc']:.2f}%   size {res['teacher_size_mib']:.1f} MiB"
    )
    print(
        f"student (BiT {res['bits']}) dev accuracy {100 * res['student']['acc']:.2f}%   "
        f"size {res['student_size_mib']:.2f} MiB ({res['teacher_size_mib'] / res['student_size_mib']:.0f}x smaller)"
    )
    print("majority class       dev accuracy 50.92%")
    print(f"training part: {time.time() - start:.0f} s; checkpoints in {output_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=SHIPPED, help="packed 1-bit SST-2 folder of part 1")
    parser.add_argument("--timing_sentences", type=int, default=100, help="dev sentences timed at batch 1")
    parser.add_argument("--train", action="store_true", help="also run part 2: train a teacher and a student here")
    parser.add_argument("--skip_shipped", action="store_true", help="skip part 1")
    parser.add_argument("--output_dir", default="runs/demo", help="part 2: where the teacher and student go")
    parser.add_argument("--student_epochs", type=float, default=3, help="part 2: BiT distillation epochs")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="math threads of the engine, of Paddle and of the training runs (default: OMP_NUM_THREADS if\n"
        "set, else every CPU this process may run on; Paddle alone would use one)",
    )
    args = parser.parse_args()
    if args.timing_sentences < 1:
        parser.error("--timing_sentences must be positive")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be positive")
    # Paddle's MKL on AVX2 kernels on AMD CPUs (paddle_binbert.cpu_tuning): faster training, and a fair
    # float32 baseline in part 1; harmless there, since part 1's accuracy comes from the packed engine.
    # Set before the first paddle_binbert import, which applies it.
    os.environ.setdefault("PADDLE_BINBERT_MKL_AVX2", "1")
    from paddle_binbert.machine import usable_cpus  # no Paddle import: OMP_NUM_THREADS is set before Paddle's

    omp = os.environ.get("OMP_NUM_THREADS", "")
    threads = args.threads or (int(omp) if omp.isdigit() and int(omp) > 0 else usable_cpus())
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by Paddle at import, and by the training subprocesses
    if not args.skip_shipped:
        if not os.path.isfile(os.path.join(args.model, "config.json")):
            parser.error(f"--model {args.model}: no packed model (config.json) there")
        shipped_model_part(args.model, args.timing_sentences, threads)
    if args.train:
        training_part(args.output_dir, args.student_epochs)
    elif not args.skip_shipped:
        print("\n(part 2, training a student here in about 13 minutes: bash scripts/demo.sh --train)")


if __name__ == "__main__":
    main()
