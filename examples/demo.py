#!/usr/bin/env python
"""The paddle_binbert demo: a real pretrained BERT binarized end to end on CPU.

1. converts the bundled all-MiniLM-L6-v2 (6 layers, hidden 384) to a PaddleNLP checkpoint;
2. fine-tunes it as the FP teacher on the bundled SST-2 sample (examples/data/sst2_sample:
   2,000 training sentences, the full 872-sentence dev set) with examples/run_glue.py;
3. distils a BiBERT 1-1-1 student from it with examples/task_distill.py and the BiBERT flags;
4. prints teacher and student dev accuracy and sizes.

    python examples/demo.py [--output_dir runs/demo] [--teacher_epochs 2] [--student_epochs 3]

About 10 minutes on 2 CPU cores. Outputs: <output_dir>/teacher and <output_dir>/bibert (PaddleNLP
checkpoint folders with results.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "data", "sst2_sample")


def run(script: str, args: list) -> None:
    cmd = [sys.executable, os.path.join(HERE, script), *args]
    print("\n$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="runs/demo", help="where the teacher and student folders go")
    parser.add_argument("--teacher_epochs", type=float, default=2, help="teacher fine-tuning epochs")
    parser.add_argument("--student_epochs", type=float, default=3, help="BiBERT distillation epochs")
    parser.add_argument("--student_lr", type=float, default=5e-4, help="BiBERT learning rate")
    args = parser.parse_args()

    from paddle_binbert.convert import resolve_backbone

    start = time.time()
    backbone = resolve_backbone("minilm")
    print(f"MiniLM-L6 backbone (PaddleNLP checkpoint): {backbone}", flush=True)
    teacher_dir = os.path.join(args.output_dir, "teacher")
    student_dir = os.path.join(args.output_dir, "bibert")
    common = ["--task_name", "SST-2", "--data_dir", SAMPLE, "--max_seq_length", "64", "--batch_size", "32",
              "--logging_steps", "20", "--overwrite_output_dir"]
    run("run_glue.py", ["--model_name_or_path", backbone, "--output_dir", teacher_dir, "--learning_rate", "5e-5",
                        "--num_train_epochs", str(args.teacher_epochs), *common])
    run("task_distill.py", ["--model_type", "bert", "--student_model_name_or_path", teacher_dir,
                            "--teacher_model_type", "bert", "--teacher_path", teacher_dir,
                            "--output_dir", student_dir, "--learning_rate", str(args.student_lr),
                            "--num_train_epochs", str(args.student_epochs), "--eval_steps", "63", *common,
                            "--bi", "--pred_distill", "--query_distill", "--key_distill", "--value_distill",
                            "--intermediate_distill"])

    with open(os.path.join(student_dir, "results.json"), encoding="utf-8") as fh:
        res = json.load(fh)
    print("\n=== paddle_binbert demo: SST-2 sample (2,000 train / 872 dev), MiniLM-L6 ===")
    teacher_acc = 100 * res["teacher"]["acc"]
    print(f"teacher (FP32)        dev accuracy {teacher_acc:.2f}%   size {res['teacher_size_mib']:.1f} MiB")
    print(f"student (BiBERT {res['bits']}) dev accuracy {100 * res['student']['acc']:.2f}%   "
          f"size {res['student_size_mib']:.2f} MiB ({res['teacher_size_mib'] / res['student_size_mib']:.0f}x smaller)")
    print(f"total time {time.time() - start:.0f} s; checkpoints in {args.output_dir}")


if __name__ == "__main__":
    main()
