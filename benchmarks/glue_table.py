"""The compact-GLUE results table: (task x method) cells on the MiniLM-L6 backbone.

    python benchmarks/glue_table.py [--tasks SST-2,MRPC,RTE] [--max_train_examples 4000] [--epochs 1]

Methods (rows, in the papers' layout): the FP teacher (``examples/run_glue.py``), BWN 1-1-1,
BiBERT 1-1-1 (the BiBERT release's flags), BiT 1-1-1 one step, BiT 1-1-1 multi-step
(``--distill_chain 32-32-32,1-1-2,1-1-1``) and BinaryBERT TWS 1-1-4 (ternary intermediate and
prediction stages, split, binary fine-tuning), all students distilled from the task's teacher with
``examples/task_distill.py``. Every cell is one command in its own folder
``RUNS/<task>/<method>`` with its log; a cell with ``results.json`` is skipped, an interrupted one
resumes from its last checkpoint, so rerunning the script continues the grid. After each cell the
table is rewritten: ``benchmarks/results/glue_table.md`` and ``glue_table.csv`` (dev metrics,
size in MiB and GFLOPs at length 128 for the MiniLM-L6 shape by ``paddle_binbert.accounting``,
steps and wall time) with the papers' BERT-base rows for reference and the budget used.

The budget flags (``--max_train_examples``, ``--epochs``, ``--teacher_epochs``) apply to every
student stage (a chain's stages each get the full budget, as in the papers); they are part of
the table's header.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
BIBERT_FLAGS = ["--bi", "--pred_distill", "--query_distill", "--key_distill", "--value_distill",
                "--intermediate_distill"]

# method key -> (row label, bits, extra task_distill flags); "teacher" is run_glue.py
METHODS: Dict[str, Dict[str, Any]] = {
    "teacher": dict(label="FP teacher (MiniLM-L6)", bits="32-32-32", flags=None),
    "bwn": dict(label="BWN (BinaryBERT baseline)", bits="1-1-1", flags=["--method", "bwn"]),
    "bibert": dict(label="BiBERT", bits="1-1-1", flags=BIBERT_FLAGS),
    "bit": dict(label="BiT (one step)", bits="1-1-1", flags=["--method", "bit"]),
    "bit_multistep": dict(label="BiT (multi-step)", bits="1-1-1",
                          flags=["--method", "bit", "--distill_chain", "32-32-32,1-1-2,1-1-1"]),
    "binarybert_tws": dict(label="BinaryBERT (TWS)", bits="1-1-4", flags=["--method", "binarybert"]),
}
# The papers' BERT-base rows (../shared/specs/reference_results.md), GLUE dev.
PAPER_ROWS = [
    ("BERT-base", "32-32-32", 418, 22.5, {"SST-2": 93.2, "MRPC": 86.3, "RTE": 72.2, "CoLA": 59.7, "STS-B": 90.1}),
    ("BinaryBERT", "1-1-4", 16.5, 1.5, {"SST-2": 92.3, "MRPC": 83.3, "RTE": 65.3, "CoLA": 44.4, "STS-B": 87.2}),
    ("BinaryBERT", "1-1-1", 16.5, 0.4, {"SST-2": 53.2, "MRPC": 68.3, "RTE": 52.7, "CoLA": 0.0, "STS-B": 6.1}),
    ("BiBERT", "1-1-1", 13.4, 0.4, {"SST-2": 88.7, "MRPC": 72.5, "RTE": 57.4, "CoLA": 25.4, "STS-B": 33.6}),
    ("BiT (one step)", "1-1-1", 13.4, 0.4, {"SST-2": 87.7, "MRPC": 79.7, "RTE": 58.8, "CoLA": 25.1, "STS-B": 71.1}),
    ("BiT (multi-step)", "1-1-1", 13.4, 0.4, {"SST-2": 89.9, "MRPC": 79.9, "RTE": 62.1, "CoLA": 32.9,
                                              "STS-B": 72.0}),
]
SEQ_LEN = {"SST-2": 64, "CoLA": 64}  # BiBERT release defaults; the other tasks use 128


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="SST-2,MRPC,RTE,CoLA,STS-B", help="comma list of GLUE tasks (columns)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma list of rows from {list(METHODS)}")
    p.add_argument("--glue_dir", default=str(ROOT.parent / "shared" / "data" / "glue"),
                   help="folder with one sub-folder per task (train.tsv, dev.tsv)")
    p.add_argument("--runs_dir", default=str(ROOT / "runs" / "glue_table"), help="where the cells run")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="where glue_table.md/.csv go")
    p.add_argument("--backbone", default="minilm", help="teacher initialisation (run_glue.py --model_name_or_path)")
    p.add_argument("--teacher_dir", action="append", default=[], metavar="TASK=PATH",
                   help="use an existing fine-tuned teacher for TASK instead of training one (repeatable)")
    p.add_argument("--max_train_examples", type=int, default=4000, help="training examples per student stage")
    p.add_argument("--epochs", type=float, default=1.0, help="epochs per student stage")
    p.add_argument("--teacher_epochs", type=float, default=3.0, help="epochs of the teacher (all training data)")
    p.add_argument("--teacher_lr", type=float, default=5e-5, help="teacher learning rate")
    p.add_argument("--student_lr", type=float, default=2e-4,
                   help="student learning rate for every method (quantizer parameters: task_distill's --clip_lr)")
    p.add_argument("--batch_size", type=int, default=32, help="batch size of every cell")
    p.add_argument("--eval_steps", type=int, default=40, help="student dev evaluation / checkpoint interval")
    p.add_argument("--python", default=sys.executable, help="interpreter running the cells")
    p.add_argument("--jobs", type=int, default=1,
                   help="cells run at once (a task's students start once its teacher is done)")
    p.add_argument("--threads_per_job", type=int, default=0,
                   help="CPU threads per cell (OMP/MKL threads and CPU affinity); 0 = the CPUs / --jobs")
    p.add_argument("--table_only", action="store_true", help="only rewrite the table from finished cells")
    p.add_argument("--dry_run", action="store_true", help="print the cells' commands without running them")
    return p


def cell_dir(args: argparse.Namespace, task: str, method: str) -> Path:
    return Path(args.runs_dir) / task / method


def teacher_path(args: argparse.Namespace, task: str) -> Path:
    for item in args.teacher_dir:
        name, _, path = item.partition("=")
        if name.strip().lower() == task.lower():
            return Path(path)
    return cell_dir(args, task, "teacher")


def has_checkpoint(path: Path) -> bool:
    return path.is_dir() and any(p.name.startswith("checkpoint-") or p.name.startswith("stage") for p in path.iterdir())


def has_teacher_checkpoint(args: argparse.Namespace, task: str) -> bool:
    """Whether the task's fine-tuned teacher is on disk (its run finished: ``results.json``)."""
    return results_path(args, task, "teacher").is_file()


def cell_command(args: argparse.Namespace, task: str, method: str) -> List[str]:
    """The command line of one cell (``--resume`` when an interrupted run is there)."""
    out = cell_dir(args, task, method)
    data = str(Path(args.glue_dir) / task)
    seq = str(SEQ_LEN.get(task, 128))
    resume = ["--resume"] if has_checkpoint(out) else []
    if method == "teacher":
        return [args.python, str(ROOT / "examples" / "run_glue.py"), "--model_name_or_path", args.backbone,
                "--task_name", task, "--data_dir", data, "--max_seq_length", seq, "--batch_size",
                str(args.batch_size), "--learning_rate", str(args.teacher_lr), "--num_train_epochs",
                str(args.teacher_epochs), "--logging_steps", "20", "--output_dir", str(out), *resume]
    teacher = str(teacher_path(args, task))
    return [args.python, str(ROOT / "examples" / "task_distill.py"), "--model_type", "bert",
            "--student_model_name_or_path", teacher, "--teacher_model_type", "bert", "--teacher_path", teacher,
            "--task_name", task, "--data_dir", data, "--max_seq_length", seq, "--batch_size", str(args.batch_size),
            "--learning_rate", str(args.student_lr), "--num_train_epochs", str(args.epochs),
            "--max_train_examples", str(args.max_train_examples), "--eval_steps", str(args.eval_steps),
            "--logging_steps", "10", "--output_dir", str(out), *METHODS[method]["flags"], *resume]


def record_path(args: argparse.Namespace, task: str, method: str) -> Path:
    """The committed copy of a finished cell's numbers: ``<out>/glue_table_cells/<task>/<method>.json``."""
    return Path(args.out) / "glue_table_cells" / task / f"{method}.json"


def cell_from_results(res: Dict[str, Any], task: str, method: str) -> Dict[str, Any]:
    """One cell's numbers (metric in %, size, FLOPs, steps, minutes) from its run's ``results.json``."""
    if method == "teacher":
        metrics = {k: v for k, v in res["dev"][next(iter(res["dev"]))].items() if isinstance(v, float)}
        metric = res["main_metric"]
    else:
        metrics, metric = res["student"], res["main_metric"]
    return {
        "task": task, "method": method, "metric": metric, "value": 100 * metrics[metric],
        "f1": 100 * metrics["f1"] if "f1" in metrics else None,
        "steps": res.get("global_steps"), "minutes": res.get("wall_time_seconds", 0.0) / 60,
        "size_mib": res.get("student_size_mib"), "train_examples": res.get("num_train_examples"),
        "epochs": res.get("args", {}).get("num_train_epochs"),
    }


def cell_epochs(args: argparse.Namespace, cell: Dict[str, Any]) -> float:
    """Epochs per stage the cell ran: its own record when it has one, else the budget flag."""
    if cell.get("epochs") is not None:
        return cell["epochs"]
    return args.teacher_epochs if cell["method"] == "teacher" else args.epochs


def results_path(args: argparse.Namespace, task: str, method: str) -> Path:
    """The ``results.json`` a cell's run writes (the teacher's may come from ``--teacher_dir``)."""
    folder = teacher_path(args, task) if method == "teacher" else cell_dir(args, task, method)
    return folder / "results.json"


def read_cell(args: argparse.Namespace, task: str, method: str) -> Optional[Dict[str, Any]]:
    """The finished cell's numbers, or None.

    The run folder's ``results.json`` wins; without it (run folders are not committed) the cell's
    committed record under ``<out>/glue_table_cells`` is used, so a fresh clone keeps the table.
    """
    path = results_path(args, task, method)
    if path.is_file():
        return cell_from_results(json.loads(path.read_text()), task, method)
    record = record_path(args, task, method)
    return json.loads(record.read_text()) if record.is_file() else None


def save_record(args: argparse.Namespace, task: str, method: str) -> None:
    """Copy a finished run's numbers to its committed record (atomic)."""
    from paddle_binbert.io_utils import write_json_atomic

    path, record = results_path(args, task, method), record_path(args, task, method)
    if path.is_file():
        record.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(record, cell_from_results(json.loads(path.read_text()), task, method))


def model_costs(args: argparse.Namespace, method: str) -> Dict[str, float]:
    """Size (MiB) and GFLOPs at length 128 of the MiniLM-L6 shape for the method's bits."""
    from paddle_binbert.accounting import flops_g, size_mib

    arch = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2)
    bits = METHODS[method]["bits"]
    return {"size_mib": size_mib(arch, bits, num_labels=2), "gflops": flops_g(arch, bits, 128, num_labels=2)}


def render(args: argparse.Namespace, tasks: List[str], methods: List[str]) -> str:
    cells = {(t, m): read_cell(args, t, m) for t in tasks for m in methods}
    teacher_epochs = sorted({cell_epochs(args, c) for (_, m), c in cells.items() if c and m == "teacher"})
    teacher_epochs_text = (" or ".join(f"{e:g}" for e in teacher_epochs) + (" (per task: the CSV)" if len(
        teacher_epochs) > 1 else "")) if teacher_epochs else f"{args.teacher_epochs:g}"
    budget = (f"students: first {args.max_train_examples} training examples, {args.epochs:g} epoch(s) per stage, "
              f"batch {args.batch_size}, lr {args.student_lr:g} (quantizer parameters 1e-4), best dev checkpoint "
              f"(evaluated every {args.eval_steps} steps and at the end); teachers: all training data, "
              f"{teacher_epochs_text} epoch(s), lr {args.teacher_lr:g}; max_seq_length 64 (SST-2, CoLA) / 128")
    lines = [
        "# Compact GLUE on MiniLM-L6 (6 x 384), dev set",
        "",
        f"Budget: {budget}. `python benchmarks/glue_table.py` (cells in `runs/glue_table/<task>/<method>`).",
        "Size and FLOPs (length 128) of the MiniLM-L6 shape by `paddle_binbert.accounting`; the TWS row is "
        "counted at 1-1-4 like the papers (the split model stores two binary matrices per split layer: see "
        "its cell's `student_size_mib`). Metrics: accuracy (SST-2, MRPC, RTE), Matthews corr. (CoLA), "
        "mean of Pearson and Spearman (STS-B); `-` = not run yet.",
        "",
        "| method | W-E-A | size MiB | FLOPs G | " + " | ".join(tasks) + " | avg |",
        "|---|---|---|---|" + "---|" * (len(tasks) + 1),
    ]
    for m in methods:
        costs = model_costs(args, m)
        vals = [cells[(t, m)]["value"] if cells[(t, m)] else None for t in tasks]
        done = [v for v in vals if v is not None]
        avg = f"{sum(done) / len(done):.1f}" if done and len(done) == len(vals) else "-"
        lines.append(f"| {METHODS[m]['label']} | {METHODS[m]['bits']} | {costs['size_mib']:.1f} | "
                     f"{costs['gflops']:.2f} | " + " | ".join("-" if v is None else f"{v:.1f}" for v in vals)
                     + f" | {avg} |")
    lines += ["", "Papers (BERT-base, full data, many epochs; ../shared/specs/reference_results.md):", "",
              "| method | W-E-A | size MB | FLOPs G | " + " | ".join(tasks) + " |",
              "|---|---|---|---|" + "---|" * len(tasks)]
    for name, bits, size, flops, scores in PAPER_ROWS:
        lines.append(f"| {name} | {bits} | {size} | {flops} | " + " | ".join(str(scores.get(t, "-")) for t in tasks)
                     + " |")
    lines += ["", "Per cell (training steps, wall minutes on 2 shared CPU cores):", "",
              "| task | method | metric | value | MRPC F1 | steps | minutes | stored size MiB |",
              "|---|---|---|---|---|---|---|---|"]
    for (t, m), c in cells.items():
        if c:
            f1 = "" if c["f1"] is None else f"{c['f1']:.1f}"
            size = "" if c["size_mib"] is None else f"{c['size_mib']:.2f}"
            lines.append(f"| {t} | {m} | {c['metric']} | {c['value']:.2f} | {f1} | {c['steps']} | "
                         f"{c['minutes']:.1f} | {size} |")
    return "\n".join(lines) + "\n"


def write_table(args: argparse.Namespace, tasks: List[str], methods: List[str]) -> None:
    """Rewrite ``glue_table.md`` and ``glue_table.csv`` in ``--out`` from the finished cells."""
    from paddle_binbert.io_utils import write_text_atomic

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "glue_table.md", render(args, tasks, methods))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["task", "method", "bits", "size_mib", "gflops_128", "metric", "value", "f1", "steps",
                     "minutes", "stored_size_mib", "train_examples_per_stage", "epochs_per_stage"])
    for t in tasks:
        for m in methods:
            c = read_cell(args, t, m)
            if c is None:
                continue
            costs = model_costs(args, m)
            writer.writerow([t, m, METHODS[m]["bits"], f"{costs['size_mib']:.2f}", f"{costs['gflops']:.3f}",
                             c["metric"], f"{c['value']:.2f}", "" if c["f1"] is None else f"{c['f1']:.2f}",
                             c["steps"], f"{c['minutes']:.1f}",
                             "" if c["size_mib"] is None else f"{c['size_mib']:.3f}",
                             c["train_examples"], cell_epochs(args, c)])
    write_text_atomic(out / "glue_table.csv", buf.getvalue())


def cell_env(threads: int) -> Dict[str, str]:
    """The environment of one cell: its math libraries limited to ``threads`` threads."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    return env


def usable_cpus() -> List[int]:
    """The CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def core_slots(jobs: int, threads: int) -> List[List[int]]:
    """Disjoint CPU sets, one per concurrent cell (round-robin over :func:`usable_cpus`)."""
    cpus = usable_cpus()
    return [[cpus[(j * threads + k) % len(cpus)] for k in range(threads)] for j in range(jobs)]


def run_grid(args: argparse.Namespace, tasks: List[str], methods: List[str]) -> int:
    """Run the unfinished cells, up to ``--jobs`` at once; returns the number of failed cells.

    Teachers come first (a task's students need its teacher), then the methods task by task; a
    student cell waits until its task's teacher has ``results.json`` and is skipped if it failed.
    Each cell is pinned to its own CPUs (Linux) with that many math threads, so concurrent cells
    do not oversubscribe the machine. Ctrl-C stops the running cells; rerunning resumes them.
    """
    order = [(t, "teacher") for t in tasks] + [(t, m) for t in tasks for m in methods if m != "teacher"]
    jobs = max(1, args.jobs)
    threads = args.threads_per_job if args.threads_per_job > 0 else max(1, len(usable_cpus()) // jobs)
    slots = core_slots(jobs, threads)
    free = list(range(jobs))
    pending: List[tuple] = []
    todo = {t for t in tasks for m in methods if m != "teacher" and read_cell(args, t, m) is None}
    for i, (t, m) in enumerate(order, 1):
        # a teacher known only from its committed record has no checkpoint here: its students need it
        done = has_teacher_checkpoint(args, t) or (t not in todo and read_cell(args, t, m) is not None) \
            if m == "teacher" else read_cell(args, t, m) is not None
        if done:
            print(f"[{i}/{len(order)}] {t} {m}: done", flush=True)
        elif m == "teacher" and teacher_path(args, t) != cell_dir(args, t, "teacher"):
            raise SystemExit(f"--teacher_dir for {t} has no results.json: {teacher_path(args, t)}")
        else:
            pending.append((i, t, m))
    failed: set = set()
    running: Dict[Any, tuple] = {}
    try:
        while pending or running:
            for item in list(pending):
                i, t, m = item
                if m != "teacher" and (t, "teacher") in failed:
                    pending.remove(item)
                    failed.add((t, m))
                    print(f"[{i}/{len(order)}] {t} {m}: skipped (the {t} teacher failed)", flush=True)
                    continue
                if not free:
                    break
                if m != "teacher" and not has_teacher_checkpoint(args, t):
                    continue  # its teacher is still training
                pending.remove(item)
                cmd = cell_command(args, t, m)
                print(f"[{i}/{len(order)}] {t} {m}: {' '.join(cmd)}", flush=True)
                if args.dry_run:
                    continue
                slot = free.pop(0)
                folder = cell_dir(args, t, m)
                folder.mkdir(parents=True, exist_ok=True)
                log = open(folder / "run.log", "a")
                pin = functools.partial(os.sched_setaffinity, 0, slots[slot]) \
                    if hasattr(os, "sched_setaffinity") else None
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                        env=cell_env(threads), preexec_fn=pin)
                running[proc] = (i, t, m, slot, log, time.time())
            if args.dry_run:
                if pending and not running:  # students of teachers that a dry run does not train
                    for i, t, m in pending:
                        print(f"[{i}/{len(order)}] {t} {m}: {' '.join(cell_command(args, t, m))}", flush=True)
                    pending = []
                continue
            time.sleep(2)
            for proc in [p for p in running if p.poll() is not None]:
                i, t, m, slot, log, start = running.pop(proc)
                log.close()
                free.append(slot)
                code = proc.returncode
                if code == 0 and read_cell(args, t, m) is not None:
                    save_record(args, t, m)
                    status = "ok"
                else:
                    failed.add((t, m))
                    status = f"FAILED (exit {code}, see {cell_dir(args, t, m) / 'run.log'})"
                print(f"[{i}/{len(order)}] {t} {m}: {status} in {(time.time() - start) / 60:.1f} min", flush=True)
                write_table(args, tasks, methods)
    except KeyboardInterrupt:
        for proc in running:
            proc.terminate()
        for proc in running:
            proc.wait()
        print("interrupted: rerun the same command to resume the unfinished cells", flush=True)
        raise
    return len(failed)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown --methods {unknown}; valid: {list(METHODS)}")
    for t in tasks:
        if not (Path(args.glue_dir) / t / "train.tsv").is_file():
            raise SystemExit(f"{Path(args.glue_dir) / t / 'train.tsv'} does not exist (--glue_dir)")
    for t in tasks:  # finished run folders -> committed records (also for cells run by hand)
        for m in methods:
            save_record(args, t, m)
    failed = 0 if args.table_only else run_grid(args, tasks, methods)
    write_table(args, tasks, methods)
    print((Path(args.out) / "glue_table.md").read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
