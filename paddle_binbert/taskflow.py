"""``Taskflow``: one-call inference with FP, simulated-quantized or packed 1-bit BERT checkpoints.

Mirrors the conventions of PaddleNLP's ``paddlenlp.Taskflow`` for local checkpoints::

    from paddle_binbert.taskflow import Taskflow

    cls = Taskflow("text_classification", task_path="runs/sst2_bibert")
    cls("a gripping, funny film")
    # [{"text": "a gripping, funny film", "predictions": [{"label": "1", "score": 0.93}]}]
    cls([("A man is eating.", "Someone eats.")])          # a batch holding one text pair

    qa = Taskflow("question_answering", task_path="runs/squad_bibert")
    qa({"question": "Who wrote it?", "context": "It was written by Ann Lee in 1990."})
    # [{"answer": "Ann Lee", "score": 0.81, "start": 18, "end": 25}]

``task_path`` is a folder holding the tokenizer (``vocab.txt``) and one of

* a PaddleNLP checkpoint (FP, or a simulated quantized student saved by ``save_pretrained``);
* a Hugging Face BERT checkpoint (``model.safetensors`` / ``pytorch_model.bin``);
* a packed 1-bit model (``config.json`` with a true ``binbert_packed``): loaded by
  ``paddle_binbert.engine.load(task_path)``;
* only a config plus a bare state dict: pass ``params_path=FILE`` (e.g. the BiBERT release's
  ``sst-2_ft_model_6315.pdparams.pdparams``), or leave the single ``*.pdparams`` file in the folder.

Command line (one JSON result per input line)::

    python -m paddle_binbert.taskflow text_classification --task_path DIR "a text" "another text"
    python -m paddle_binbert.taskflow question_answering --task_path DIR --input questions.jsonl

Every TEXT argument and every line of ``--input`` gives exactly one output line, in order, so that
outputs line up with inputs. Classification lines are text, kept verbatim (quotes included);
``TEXT<TAB>PAIR`` or a JSON array ``["text", "pair"]`` is a text pair. QA lines are JSON objects
``{"question": ..., "context": ...}``. An input that cannot be used (a blank line or an empty
argument, a JSON array that is not two strings, a QA line that is not such an object) gets an
error entry ``{"error": "FILE, line N: ...", "file": FILE, "line": N}`` (``{"error": ...,
"argument": N}`` for arguments) instead of a prediction, the other inputs are predicted, and the
exit status is 1. A missing or non-UTF-8 input file, or a checkpoint that cannot be loaded, is
a one-line ``error:`` message on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .checkpoints import PACKED_KEY, is_packed_dir, load_checkpoint
from .io_utils import decode_utf8
from .taskflow_format import TaskPipeline, cap_max_length, check_options, check_sizes, read_id2label

logger = logging.getLogger(__name__)

__all__ = ["TASKS", "Taskflow", "main"]

#: Taskflow task name -> :func:`paddle_binbert.checkpoints.load_checkpoint` task
TASKS = {"text_classification": "sequence_classification", "question_answering": "question_answering"}

_COMMON_OPTIONS = ("params_path", "config", "length_config")


def _to_numpy(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def _load_packed(path: str) -> Any:
    """The packed 1-bit model of ``path``, via ``paddle_binbert.engine.load``."""
    try:
        from .engine import load as engine_load
    except ImportError as err:
        raise RuntimeError(
            f"{path} holds a packed 1-bit model ({PACKED_KEY!r} in config.json), which needs the binary inference "
            f"engine paddle_binbert.engine; it cannot be imported here ({err}). Install a paddle_binbert build with "
            "the engine, or use the simulated (fake-quant) checkpoint folder instead"
        ) from err
    return engine_load(path)


class Taskflow(TaskPipeline):
    """PaddleNLP-style inference pipeline for ``text_classification`` and ``question_answering``.

    Args:
        task: ``"text_classification"`` or ``"question_answering"``.
        task_path: checkpoint folder (see the module docstring); it must hold the tokenizer files.
        batch_size: texts (classification) or windows (QA) per forward pass.
        max_length: longest input in tokens, special tokens included: longer classification
            inputs are truncated (pairs: longest first), QA contexts are split into windows. Capped
            at the model's ``max_position_embeddings``.
        device: Paddle device (``"cpu"``, ``"gpu"``, ``"gpu:0"`` ...), set with ``paddle.set_device``.
        **kwargs: ``params_path`` (bare state dict to load, architecture from ``task_path`` or
            ``config``), ``config`` (architecture of ``params_path``: a name such as
            ``bert-base-uncased`` or a config path), ``length_config`` (Dynamic-TinyBERT token budgets
            ``l_1 >= ... >= l_L``, one per layer, as a sequence or ``"30-18-9-6-6-6"``, e.g. the pick
            of ``paddle-binbert search-length``: runs Drop-and-Restore, see
            :func:`paddle_binbert.length_adaptive.length_adaptive_forward`; packed 1-bit folders run it
            inside the engine's kernels, ``engine.load(path)(..., length_config=C)``); for
            classification ``top_k`` (labels returned per input, default 1) and ``id2label``
            (overrides the checkpoint's names;
            ``task_path/id2label.json`` is read too, as PaddleNLP does); for QA ``doc_stride``
            (step between window starts, default ``max_length // 3``), ``max_query_length``
            (default ``min(64, max_length // 2)``), ``n_best_size`` (20) and ``max_answer_length``
            (30 tokens).
    """

    def __init__(
        self,
        task: str,
        task_path: Optional[Union[str, os.PathLike]] = None,
        batch_size: int = 8,
        max_length: int = 128,
        device: str = "cpu",
        **kwargs: Any,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
        kwargs = check_options(f"Taskflow({task!r})", task, kwargs, extra=_COMMON_OPTIONS)
        if task_path is None:
            raise ValueError("Taskflow needs task_path= (a checkpoint folder with the tokenizer files)")
        batch_size, max_length = check_sizes(batch_size, max_length)
        self.task = task
        self.task_path = os.fspath(task_path)
        self.batch_size = batch_size
        self.kwargs = dict(kwargs)
        self.packed = self.kwargs.get("params_path") is None and is_packed_dir(self.task_path)
        if device:
            import paddle

            paddle.set_device(device)
        self.model, self.config = self._load_model()
        self.length_config = self._length_config(kwargs.get("length_config"))
        self.tokenizer = self._load_tokenizer()
        self.max_length = cap_max_length(max_length, getattr(self.config, "max_position_embeddings", None), logger)
        if task == "text_classification":
            self.num_labels = int(getattr(self.config, "num_labels", 2))
            fallback = getattr(self.config, "id2label", None)
            self.id2label = read_id2label(kwargs.get("id2label"), self.task_path, fallback, self.num_labels)
        self._set_task_options(kwargs)

    # ------------------------------------------------------------------------------ loading
    def _params_file(self) -> Optional[str]:
        """``params_path``, or the single ``*.pdparams`` of a folder without standard weights."""
        params = self.kwargs.get("params_path")
        if params is not None:
            return os.fspath(params)
        if not os.path.isdir(self.task_path):
            return None
        names = os.listdir(self.task_path)
        if any(n.startswith(("model_state", "model.safetensors", "pytorch_model")) for n in names):
            return None
        loose = sorted(n for n in names if n.endswith(".pdparams"))
        if len(loose) > 1:
            raise ValueError(f"{self.task_path} holds several .pdparams files {loose}: pass params_path= to pick one")
        return os.path.join(self.task_path, loose[0]) if loose else None

    def _load_model(self) -> Tuple[Any, Any]:
        """The model (eval mode) and its config."""
        from paddlenlp.transformers import BertConfig

        if not os.path.isdir(self.task_path):
            raise FileNotFoundError(f"task_path {self.task_path} is not a folder")
        load_task = TASKS[self.task]
        if self.packed:
            model = _load_packed(self.task_path)
            if hasattr(model, "eval"):
                model.eval()
            config = getattr(model, "config", None)
            if config is None or not hasattr(config, "num_labels"):
                config = BertConfig.from_pretrained(self.task_path)
            return model, config
        params = self._params_file()
        if params is not None:
            config = self.kwargs.get("config") or self.task_path
            model = load_checkpoint(params, task=load_task, config=config)
        else:
            model = load_checkpoint(self.task_path, task=load_task)
        return model, model.config

    def _length_config(self, value: Any) -> Optional[Tuple[int, ...]]:
        """``length_config=`` checked against the model: one non-increasing budget per layer."""
        if value is None:
            return None
        from .engine.layout import check_length_config, parse_length_config

        config = parse_length_config(value) if isinstance(value, str) else value
        config = check_length_config(config, int(self.config.num_hidden_layers))
        if self.packed and hasattr(self.model, "check_length_config"):
            config = self.model.check_length_config(config)  # e.g. BWN's all-ones attention refuses configurations
        return config

    def _load_tokenizer(self) -> Any:
        from paddlenlp.transformers import BertTokenizer

        if not os.path.isfile(os.path.join(self.task_path, "vocab.txt")):
            raise FileNotFoundError(f"{self.task_path} holds no vocab.txt: Taskflow needs the tokenizer files there")
        return BertTokenizer.from_pretrained(self.task_path)

    # ------------------------------------------------------------------------------ running
    def _forward(self, arrays: Dict[str, np.ndarray]) -> Any:
        import paddle

        inputs = {
            k: paddle.to_tensor(arrays[k], dtype="int64") for k in ("input_ids", "token_type_ids", "attention_mask")
        }
        with paddle.no_grad():
            if self.packed and self.length_config is not None:  # Drop-and-Restore inside the engine's kernels
                return self.model(**inputs, length_config=self.length_config)
            if self.length_config is not None:
                from .length_adaptive import length_adaptive_forward

                return length_adaptive_forward(self.model, length_config=self.length_config, **inputs)
            return self.model(**inputs)

    # ------------------------------------------------------------------------------ TaskPipeline hooks
    def _encode_pairs(self, pairs: Sequence[Tuple[str, Optional[str]]]) -> List[Mapping[str, Sequence[int]]]:
        return [
            self.tokenizer(a, text_pair=b, max_length=self.max_length, truncation=True, return_token_type_ids=True)
            for a, b in pairs
        ]

    def _classification_logits(self, arrays: Dict[str, np.ndarray]) -> np.ndarray:
        output = self._forward(arrays)
        if hasattr(output, "logits"):
            output = output.logits
        elif isinstance(output, (tuple, list)):
            output = output[0]
        return _to_numpy(output)

    def _span_logits(self, arrays: Dict[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        output = self._forward(arrays)
        if hasattr(output, "start_logits"):
            return _to_numpy(output.start_logits), _to_numpy(output.end_logits)
        return _to_numpy(output[0]), _to_numpy(output[1])


# ------------------------------------------------------------------------------ command line


class InputError(ValueError):
    """A command-line input that cannot be predicted (it gets an error entry in the output)."""


def _parse_input(task: str, text: str) -> Any:
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


def _read_input_file(path: str) -> List[str]:
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


def _read_inputs(task: str, arguments: Sequence[str], file_lines: Sequence[str], file_name: Optional[str]) -> List[Any]:
    """One entry per TEXT argument, then one per input line: ``(item, None)`` for a usable input,
    ``(None, error entry)`` otherwise."""
    entries: List[Any] = []
    sources = [(f"argument {i}", {"argument": i}, text) for i, text in enumerate(arguments, 1)]
    shown = "<stdin>" if file_name == "-" else file_name
    sources += [(f"{shown}, line {n}", {"file": shown, "line": n}, text) for n, text in enumerate(file_lines, 1)]
    for where, location, text in sources:
        try:
            entries.append((_parse_input(task, text), None))
        except InputError as err:
            entries.append((None, {"error": f"{where}: {err}", **location}))
    return entries


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point: run a Taskflow on texts or an input file, print JSON lines.

    Exit status: 0 when every input was predicted, 1 when some inputs got an error entry, 2 for a
    usage error, an unreadable input file or a checkpoint that cannot be loaded.
    """
    parser = argparse.ArgumentParser(
        prog="python -m paddle_binbert.taskflow",
        description="Predict with a (binarized) BERT checkpoint. Inputs: TEXT arguments, or --input FILE with "
        "one input per line (text_classification: the line's text verbatim, TEXT<TAB>PAIR or a JSON array "
        '["text", "pair"]; question_answering: a JSON object {"question": ..., "context": ...}). One JSON '
        'output line per input, in order; an unusable input (e.g. a blank line) gets {"error": ..., "line": N} '
        "and exit status 1.",
    )
    parser.add_argument("task", choices=sorted(TASKS))
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
        file_lines = _read_input_file(args.input) if args.input is not None else []
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    entries = _read_inputs(args.task, args.texts, file_lines, args.input)
    if not entries:
        parser.error("no inputs: give TEXT arguments or --input FILE")
    items = [item for item, error in entries if error is None]
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


if __name__ == "__main__":
    sys.exit(main())
