#!/usr/bin/env python
"""Pack a trained 1-1-1 SST-2 student into the folder the demo ships (examples/models/sst2-1bit).

    python benchmarks/ship_sst2.py --student ../runs/sst2_bit [--out examples/models/sst2-1bit] \
        [--data_dir ../shared/data/glue/SST-2] [--max_mib 5]

Loads the student checkpoint (bibert or bit preset), names its labels (0 = negative,
1 = positive, SST-2's), packs it with its tokenizer (float32 FP islands, or float16 when that is
needed to stay under ``--max_mib``), then scores the packed folder with the native engine and the
student in Paddle on every dev sentence and refuses to ship when they disagree on any prediction.
Writes ``<out>/../sst2-1bit.md``-style provenance to ``--record`` (default
benchmarks/results/sst2_students/shipped.md): source run, its results.json, sizes, accuracies.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

LABELS = {0: "negative", 1: "positive"}


def folder_mib(path: str) -> float:
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) / 2**20


def read_json(path: str) -> dict:
    """The JSON object in ``path``, or {} when the file does not exist."""
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def best_checkpoint(trainer_state: dict) -> str:
    """The checkpoint the run saved as its best (from its trainer_state.json), or "the run folder"."""
    best = trainer_state.get("best_model_checkpoint")
    if best:
        return f"best dev checkpoint, `{os.path.basename(best)}`"
    return "the run folder's model"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--student", required=True, help="trained student checkpoint folder (bibert or bit preset)")
    p.add_argument("--out", default="examples/models/sst2-1bit", help="packed folder to write")
    p.add_argument("--data_dir", default="../shared/data/glue/SST-2", help="SST-2 folder (dev.tsv)")
    p.add_argument("--max_mib", type=float, default=5.0, help="size limit of the shipped folder")
    p.add_argument("--record", default="benchmarks/results/sst2_students/shipped.md", help="provenance file")
    a = p.parse_args()

    import paddle
    from paddlenlp.transformers import BertTokenizer

    from paddle_binbert import engine, load_model
    from paddle_binbert.data.glue import glue_collator, load_glue_features
    from paddle_binbert.export import pack_model
    from paddle_binbert.models import quant_config_of

    student = load_model(a.student)
    preset = quant_config_of(student).name
    if preset not in ("bibert", "bit"):
        p.error(f"--student {a.student} is a {preset} student; ship a bibert or bit one")
    student.eval()
    student.config.id2label = dict(LABELS)
    student.config.label2id = {v: k for k, v in LABELS.items()}
    tokenizer = BertTokenizer.from_pretrained(a.student)
    # pack and verify in a scratch folder; only a verified model replaces --out
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".ship-", dir=os.path.dirname(os.path.abspath(a.out)))
    candidate = os.path.join(staging, "packed")
    for fp_dtype in ("float32", "float16"):
        pack_model(student, candidate, tokenizer=tokenizer, fp_dtype=fp_dtype, source=a.student)
        if folder_mib(candidate) <= a.max_mib:
            break
    size = folder_mib(candidate)
    if size > a.max_mib:
        shutil.rmtree(staging)
        p.error(f"the packed folder is {size:.2f} MiB, over --max_mib {a.max_mib}")

    dev = load_glue_features(a.data_dir, "SST-2", "dev", tokenizer, 64)
    collate = glue_collator(tokenizer)
    packed = engine.load(candidate, backend="native")
    labels, sim_pred, eng_pred, gaps = [], [], [], []
    for i in range(0, len(dev), 32):
        batch = collate(dev[i : i + 32])
        with paddle.no_grad():
            sim = student(batch["input_ids"], token_type_ids=batch["token_type_ids"],
                          attention_mask=batch["attention_mask"]).numpy()  # fmt: skip
        eng = packed(batch["input_ids"].numpy(), batch["token_type_ids"].numpy(), batch["attention_mask"].numpy())
        labels += batch["labels"].numpy().tolist()
        sim_pred += sim.argmax(-1).tolist()
        eng_pred += eng.argmax(-1).tolist()
        gaps.append(float(np.abs(sim - eng).max()))
    labels, sim_pred, eng_pred = map(np.array, (labels, sim_pred, eng_pred))
    agree = float((sim_pred == eng_pred).mean())
    acc_sim, acc_eng = 100 * float((sim_pred == labels).mean()), 100 * float((eng_pred == labels).mean())
    if agree < 1.0:
        shutil.rmtree(staging)
        p.error(f"engine and Paddle disagree on {int((sim_pred != eng_pred).sum())} dev sentences: not shipped")
    fp = json.load(open(os.path.join(candidate, "config.json"), encoding="utf-8"))["binbert_packed"]["fp_dtype"]
    pack_model(student, a.out, tokenizer=tokenizer, fp_dtype=fp, source=a.student)  # the verified bytes again
    shutil.rmtree(staging)
    results = read_json(os.path.join(a.student, "results.json"))
    # a checkpoint folder of a run in progress has no results.json: its trainer_state.json says how far it got
    state = read_json(os.path.join(a.student, "trainer_state.json"))
    teacher_acc = results.get("teacher", {}).get("acc")
    teacher_text = f"{100 * teacher_acc:.2f}" if teacher_acc is not None else "not recorded in a checkpoint folder"
    steps = results.get("global_steps", state.get("global_step", "?"))
    epochs = results.get("epochs", f"{state['epoch']:.3f}" if "epoch" in state else "?")
    lines = [
        "# The shipped 1-bit SST-2 model (`examples/models/sst2-1bit`)",
        "",
        f"Packed by `python benchmarks/ship_sst2.py --student {a.student} --out {a.out}`.",
        "",
        "| field | value |",
        "|---|---|",
        f"| source run | `{a.student}` ({preset} preset, bits {quant_config_of(student).bits_str}) |",
        f"| teacher dev acc (recorded by the run) | {teacher_text} |",
        f"| steps / epochs trained | {steps} / {epochs} |",
        f"| weights shipped | {best_checkpoint(state)} |",
        f"| packed folder | {size:.2f} MiB (FP islands {fp}) |",
        f"| dev acc, student in Paddle (simulated) | {acc_sim:.2f} |",
        f"| dev acc, packed native engine | {acc_eng:.2f} |",
        f"| prediction agreement | {100 * agree:.2f}% of {len(labels)} |",
        f"| largest logit difference (any sentence) | {max(gaps):.3g} |",
    ]
    os.makedirs(os.path.dirname(a.record) or ".", exist_ok=True)
    with open(a.record, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
