"""The inference command lines: ``paddle-binbert predict`` (Taskflow) and ``paddle-binbert eval``.

    paddle-binbert predict text_classification --task_path DIR "a text" "another text"
    paddle-binbert predict question_answering --task_path DIR --input questions.jsonl
    paddle-binbert eval --task_name SST-2 --data_dir glue/SST-2 --checkpoint runs/sst2_bibert
    paddle-binbert eval --task_name squad --data_file dev-v1.1.json --checkpoint runs/squad_bibert

``predict``: every TEXT argument and every line of ``--input`` gives exactly one output line, in
order, so that outputs line up with inputs. Classification lines are text, kept verbatim (quotes
included); ``TEXT<TAB>PAIR`` or a JSON array ``["text", "pair"]`` is a text pair. QA lines are JSON
objects ``{"question": ..., "context": ...}``. An input that cannot be used (a blank line or an
empty argument, a JSON array that is not two strings, a QA line that is not such an object) gets an
error entry ``{"error": "FILE, line N: ...", "file": FILE, "line": N}`` (``{"error": ...,
"argument": N}`` for arguments) instead of a prediction, the other inputs are predicted, and the
exit status is 1. A missing or non-UTF-8 input file, or a checkpoint that cannot be loaded, is a
one-line ``error:`` message on stderr with exit status 2.

``eval`` prints one JSON object: the task, the checkpoint and its metrics
(:mod:`paddle_binbert.inference.evaluate`).

Paddle is imported only once a model is loaded.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

from ..io_utils import decode_utf8
from .taskflow import TASK_CLASSES

__all__ = ["InputError", "eval_main", "parse_input", "predict_main", "read_input_file", "read_inputs"]


# ------------------------------------------------------------------------------ predict


class InputError(ValueError):
    """A command-line input that cannot be predicted (it gets an error entry in the output)."""


def parse_input(task: str, text: str) -> Any:
    """One command-line input (a TEXT argument or an input line) as a Taskflow item.

    text_classification: the text verbatim, a ``TEXT<TAB>PAIR`` pair, or a JSON array of two
    strings (a pair); a line starting with ``[`` that is not JSON stays text. question_answering:
    a JSON object with string ``question`` and ``context``.

    Raises:
        InputError: blank input, a JSON array that is not two strings, a bad QA object.
    """
    if not text.strip():
        raise InputError("blank input: nothing to predict")
    if task == "question_answering":
        try:
            value = json.loads(text)
        except ValueError as err:
            raise InputError(f'expected a JSON object {{"question": ..., "context": ...}}: {err}') from None
        if not isinstance(value, dict) or not all(isinstance(value.get(k), str) for k in ("question", "context")):
            raise InputError(
                f'expected a JSON object with string "question" and "context", got {json.dumps(value)[:80]}'
            )
        return value
    if text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None  # plain text that happens to start with a bracket
        if isinstance(value, list):
            if len(value) != 2 or not all(isinstance(t, str) for t in value):
                raise InputError(f'expected a JSON array of two strings ["text", "text_pair"], got {text.strip()[:80]}')
            return (value[0], value[1])
    if "\t" in text:
        first, second = text.split("\t", 1)
        return (first, second)
    return text


def read_input_file(path: str) -> List[str]:
    """The lines of ``--input`` (``-``: stdin), line endings removed, blank lines kept.

    Raises:
        InputError: the file does not exist, cannot be read or is not UTF-8 (the message names it).
    """
    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            stream = getattr(sys.stdin, "buffer", None)
            raw = stream.read() if stream is not None else sys.stdin.read().encode("utf-8")
        else:
            with open(path, "rb") as handle:
                raw = handle.read()
    except FileNotFoundError:
        raise InputError(f"input file {name} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"input file {name} is a folder, expected a text file with one input per line") from None
    except OSError as err:
        raise InputError(f"cannot read input file {name}: {err.strerror or err}") from None
    text = decode_utf8(raw, f"input file {name}", InputError)
    return [line[:-1] if line.endswith("\n") else line for line in io.StringIO(text, newline=None)]


def read_inputs(task: str, arguments: Sequence[str], file_lines: Sequence[str], file_name: Optional[str]) -> List[Any]:
    """One entry per TEXT argument, then one per input line: ``(item, None)`` for a usable input,
    ``(None, error entry)`` otherwise."""
    entries: List[Any] = []
    sources = [(f"argument {i}", {"argument": i}, text) for i, text in enumerate(arguments, 1)]
    shown = "<stdin>" if file_name == "-" else file_name
    sources += [(f"{shown}, line {n}", {"file": shown, "line": n}, text) for n, text in enumerate(file_lines, 1)]
    for where, location, text in sources:
        try:
            entries.append((parse_input(task, text), None))
        except InputError as err:
            entries.append((None, {"error": f"{where}: {err}", **location}))
    return entries


def predict_main(argv: Optional[List[str]] = None) -> int:
    """``paddle-binbert predict TASK --task_path DIR [TEXT ...] [--input FILE]``: run a Taskflow on texts
    or an input file, print JSON lines.

    Exit status: 0 when every input was predicted, 1 when some inputs got an error entry, 2 for a
    usage error, an unreadable input file or a checkpoint that cannot be loaded.
    """
    parser = argparse.ArgumentParser(
        prog="paddle-binbert predict",
        description="Predict with a (binarized) BERT checkpoint. Inputs: TEXT arguments, or --input FILE with "
        "one input per line (text_classification: the line's text verbatim, TEXT<TAB>PAIR or a JSON array "
        '["text", "pair"]; question_answering: a JSON object {"question": ..., "context": ...}). One JSON '
        'output line per input, in order; an unusable input (e.g. a blank line) gets {"error": ..., "line": N} '
        "and exit status 1.",
    )
    parser.add_argument("task", choices=sorted(TASK_CLASSES))
    parser.add_argument("--task_path", required=True, help="checkpoint folder with the tokenizer files")
    parser.add_argument("--params_path", default=None, help="bare state dict (.pdparams) to load")
    parser.add_argument("--config", default=None, help="architecture of --params_path (name or config path)")
    parser.add_argument("--input", default=None, help="UTF-8 input file, one input per line ('-' for stdin)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--top_k", type=int, default=None, help="text_classification: labels per input")
    parser.add_argument(
        "--length_config",
        default=None,
        help="Dynamic-TinyBERT token budgets per layer, e.g. 30-18-9-6-6-6 (the pick of search-length); "
        "default: full length",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("texts", nargs="*", help="inputs (text_classification: TEXT or TEXT<TAB>PAIR)")
    args = parser.parse_intermixed_args(argv)
    kwargs: Dict[str, Any] = {
        k: getattr(args, k) for k in ("params_path", "config", "length_config") if getattr(args, k)
    }
    if args.top_k is not None:
        if args.task != "text_classification":
            parser.error("--top_k applies to text_classification only")
        kwargs["top_k"] = args.top_k
    try:
        file_lines = read_input_file(args.input) if args.input is not None else []
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    entries = read_inputs(args.task, args.texts, file_lines, args.input)
    if not entries:
        parser.error("no inputs: give TEXT arguments or --input FILE")
    items = [item for item, error in entries if error is None]
    from .taskflow.taskflow import Taskflow

    try:
        flow = Taskflow(
            args.task,
            task_path=args.task_path,
            batch_size=args.batch_size,
            max_length=args.max_length,
            device=args.device,
            **kwargs,
        )
        results = iter(flow(items))
    except (FileNotFoundError, ValueError, TypeError, RuntimeError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    lines = [json.dumps(error if error is not None else next(results), ensure_ascii=False) for _, error in entries]
    sys.stdout.write("".join(line + "\n" for line in lines))
    failed = [error["error"] for _, error in entries if error is not None]
    if failed:
        shown = "; ".join(failed[:3]) + ("; ..." if len(failed) > 3 else "")
        print(f"error: {len(failed)} of {len(entries)} inputs have no prediction: {shown}", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------ eval


def eval_main(argv: Optional[List[str]] = None) -> int:
    """``paddle-binbert eval --task_name TASK --checkpoint DIR (--data_dir DIR | --data_file FILE)``."""
    from ..data.glue import GLUE_TASKS, check_glue_files, normalize_task_name
    from ..data.squad import is_squad_task

    parser = argparse.ArgumentParser(
        prog="paddle-binbert eval",
        description="Evaluate a checkpoint (FP, simulated quantized, packed 1-bit or static export) on a GLUE dev "
        "set or on SQuAD v1.1; prints the metrics as JSON.",
    )
    parser.add_argument("--task_name", required=True, help=f"one of {', '.join(GLUE_TASKS)}, or squad")
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder (with the tokenizer files)")
    parser.add_argument("--data_dir", default=None, help="GLUE: the task's folder of TSV files")
    parser.add_argument("--split", default="dev", help="GLUE split (dev, dev_matched, dev_mismatched, train)")
    parser.add_argument("--data_file", default=None, help="SQuAD: the v1.1 JSON file (e.g. dev-v1.1.json)")
    parser.add_argument("--max_seq_length", type=int, default=None, help="default 128 (GLUE) / 384 (SQuAD)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_examples", type=int, default=None, help="only the first N examples")
    parser.add_argument("--doc_stride", type=int, default=128, help="SQuAD: step between window starts")
    parser.add_argument("--max_query_length", type=int, default=64, help="SQuAD")
    parser.add_argument("--n_best_size", type=int, default=20, help="SQuAD")
    parser.add_argument("--max_answer_length", type=int, default=30, help="SQuAD")
    parser.add_argument("--output_dir", default=None, help="SQuAD: write predictions.json / nbest_predictions.json")
    parser.add_argument("--num_threads", type=int, default=None, help="static exports: CPU threads (default 1)")
    parser.add_argument(
        "--onednn",
        choices=("auto", "on", "off"),
        default="auto",
        help="static exports: oneDNN kernels (auto: FP exports only; quantized students are exact without)",
    )
    args = parser.parse_args(argv)

    squad = is_squad_task(args.task_name)
    if not squad:
        try:
            task = normalize_task_name(args.task_name)
        except ValueError:
            print(f"error: unknown task {args.task_name!r}; valid: {', '.join(GLUE_TASKS)}, squad", file=sys.stderr)
            return 2
        if args.data_dir is None:
            parser.error(f"--data_dir is required for GLUE task {task}")
    elif args.data_file is None:
        parser.error("--data_file is required for --task_name squad")
    use_onednn = None if args.onednn == "auto" else args.onednn == "on"
    try:
        if squad:  # data first: a missing file should not wait for the model to load
            if not os.path.isfile(args.data_file):
                raise FileNotFoundError(f"SQuAD file {args.data_file} does not exist")
        else:
            check_glue_files(args.data_dir, task, [args.split])
        from .evaluate import evaluate_glue, evaluate_squad
        from .predictor import load_predictor

        task_name = "question_answering" if squad else "text_classification"
        predictor = load_predictor(args.checkpoint, task_name, num_threads=args.num_threads, use_onednn=use_onednn)
        if squad:
            metrics = evaluate_squad(
                args.checkpoint,
                args.data_file,
                max_seq_length=args.max_seq_length or 384,
                doc_stride=args.doc_stride,
                max_query_length=args.max_query_length,
                batch_size=args.batch_size,
                n_best_size=args.n_best_size,
                max_answer_length=args.max_answer_length,
                max_examples=args.max_examples,
                output_dir=args.output_dir,
                predictor=predictor,
            )
            result: Dict[str, Any] = {"task": "squad", "data_file": args.data_file}
        else:
            metrics = evaluate_glue(
                args.checkpoint,
                task,
                args.data_dir,
                max_seq_length=args.max_seq_length or 128,
                batch_size=args.batch_size,
                max_examples=args.max_examples,
                split=args.split,
                predictor=predictor,
            )
            result = {"task": task, "split": args.split}
    except (FileNotFoundError, ValueError, TypeError, RuntimeError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result["checkpoint"] = args.checkpoint
    result.update(metrics)
    print(json.dumps(result))
    return 0
