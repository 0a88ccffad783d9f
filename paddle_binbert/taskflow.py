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
import math
import numbers
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .checkpoints import PACKED_KEY, is_packed_dir, load_checkpoint

logger = logging.getLogger(__name__)

__all__ = ["TASKS", "Taskflow", "main"]

#: Taskflow task name -> :func:`paddle_binbert.checkpoints.load_checkpoint` task
TASKS = {"text_classification": "sequence_classification", "question_answering": "question_answering"}

_COMMON_OPTIONS = ("params_path", "config", "length_config")
_TASK_OPTIONS = {
    "text_classification": ("top_k", "id2label"),
    "question_answering": ("doc_stride", "max_query_length", "n_best_size", "max_answer_length"),
}

TextItem = Union[str, Tuple[str, str], List[str]]

#: integer options and their smallest accepted value
_INT_OPTIONS = {
    "batch_size": 1,
    "max_length": 4,
    "top_k": 1,
    "doc_stride": 1,
    "max_query_length": 1,
    "n_best_size": 1,
    "max_answer_length": 1,
}


def _int_option(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; a ValueError naming the option otherwise (NaN, inf, 2.5,
    strings, booleans, values below ``minimum``). Integral floats such as ``128.0`` are accepted."""
    expected = f"{name} must be an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{expected}, got {value!r} ({type(value).__name__})")
    if not isinstance(value, numbers.Integral):
        number = float(value)
        if not math.isfinite(number) or not number.is_integer():
            raise ValueError(f"{expected}, got {value!r}")
    number = int(value)
    if number < minimum:
        raise ValueError(f"{expected}, got {value!r}")
    return number


def _softmax(row: np.ndarray) -> np.ndarray:
    row = row.astype("float64")
    exp = np.exp(row - row.max())
    return exp / exp.sum()


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


class Taskflow:
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
        allowed = _COMMON_OPTIONS + _TASK_OPTIONS[task]
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise TypeError(f"Taskflow({task!r}) got unknown option(s) {unknown}; valid options: {list(allowed)}")
        if task_path is None:
            raise ValueError("Taskflow needs task_path= (a checkpoint folder with the tokenizer files)")
        batch_size = _int_option("batch_size", batch_size, _INT_OPTIONS["batch_size"])
        max_length = _int_option("max_length", max_length, _INT_OPTIONS["max_length"])
        for name in _TASK_OPTIONS[task]:
            if name in _INT_OPTIONS and kwargs.get(name) is not None:
                kwargs[name] = _int_option(name, kwargs[name], _INT_OPTIONS[name])
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
        max_positions = getattr(self.config, "max_position_embeddings", None)
        if max_positions and max_length > max_positions:
            logger.warning(
                "max_length=%d exceeds the model's %d positions; using %d", max_length, max_positions, max_positions
            )
            max_length = int(max_positions)
        self.max_length = int(max_length)
        if task == "text_classification":
            self.num_labels = int(getattr(self.config, "num_labels", 2))
            self.id2label = self._id2label()
            self.top_k = kwargs.get("top_k") or 1
        else:
            self.max_query_length = kwargs.get("max_query_length") or min(64, self.max_length // 2)
            self.doc_stride = kwargs.get("doc_stride") or max(1, self.max_length // 3)
            self.n_best_size = kwargs.get("n_best_size") or 20
            self.max_answer_length = kwargs.get("max_answer_length") or 30

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
        from .length_adaptive import check_length_config
        from .length_adaptive.search import parse_length_config

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

    def _id2label(self) -> Dict[int, Any]:
        mapping = self.kwargs.get("id2label")
        if mapping is None:
            path = os.path.join(self.task_path, "id2label.json")
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as handle:
                    mapping = json.load(handle)
        if mapping is None:
            mapping = getattr(self.config, "id2label", None) or {}
        labels = {int(k): v for k, v in dict(mapping).items()}
        return {i: labels.get(i, f"LABEL_{i}") for i in range(self.num_labels)}

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

    def __call__(self, inputs: Any) -> List[Dict[str, Any]]:
        """Run the task on one input or a list of inputs; returns one result dict per input.

        ``text_classification``: a text, a text pair (a tuple of two strings), or a list of texts
        and/or pairs (pairs inside a list may be tuples or two-element lists; a top-level list of
        strings is a batch of single texts, as in PaddleNLP). Results are
        ``{"text": input, "predictions": [{"label", "score"}, ...]}`` (softmax scores, best first,
        ``top_k`` of them), or ``{"text": input, "score": value}`` for a regression model
        (``num_labels == 1``, e.g. STS-B).

        ``question_answering``: ``{"question": ..., "context": ...}`` or a list of them. Results are
        ``{"answer", "score", "start", "end"}`` with ``answer == context[start:end]`` (character
        offsets) and ``score`` the answer's probability among the n-best spans (0.0 and an empty
        answer when the context has no token).
        """
        if self.task == "text_classification":
            return self._classify(inputs)
        return self._answer(inputs)

    # ------------------------------------------------------------------------------ classification
    @staticmethod
    def _text_items(inputs: Any) -> List[TextItem]:
        if isinstance(inputs, str) or (isinstance(inputs, tuple) and len(inputs) == 2):
            return [inputs]
        if isinstance(inputs, list):
            return list(inputs)
        raise TypeError(
            f"text_classification expects a text, a (text, text_pair) tuple or a list; got {type(inputs).__name__}"
        )

    @staticmethod
    def _split_item(item: Any, index: int) -> Tuple[str, Optional[str]]:
        if isinstance(item, str):
            return item, None
        if isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, str) for t in item):
            return item[0], item[1]
        raise TypeError(f"input {index}: expected a string or a pair of strings, got {item!r:.80}")

    def _encode_texts(self, pairs: Sequence[Tuple[str, Optional[str]]]) -> Dict[str, np.ndarray]:
        encoded = [
            self.tokenizer(a, text_pair=b, max_length=self.max_length, truncation=True, return_token_type_ids=True)
            for a, b in pairs
        ]
        length = max(len(e["input_ids"]) for e in encoded)
        pad = self.tokenizer.pad_token_id
        ids = np.full((len(encoded), length), pad, dtype="int64")
        types = np.zeros((len(encoded), length), dtype="int64")
        mask = np.zeros((len(encoded), length), dtype="int64")
        for row, e in enumerate(encoded):
            n = len(e["input_ids"])
            ids[row, :n] = e["input_ids"]
            types[row, :n] = e["token_type_ids"]
            mask[row, :n] = 1
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}

    def _logits(self, output: Any) -> np.ndarray:
        if hasattr(output, "logits"):
            output = output.logits
        elif isinstance(output, (tuple, list)):
            output = output[0]
        return _to_numpy(output).reshape(-1, self.num_labels)

    def _classify(self, inputs: Any) -> List[Dict[str, Any]]:
        items = self._text_items(inputs)
        pairs = [self._split_item(item, i) for i, item in enumerate(items)]
        results: List[Dict[str, Any]] = []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            logits = self._logits(self._forward(self._encode_texts(chunk)))
            for item, row in zip(items[start : start + self.batch_size], logits):
                if self.num_labels == 1:
                    results.append({"text": item, "score": float(row[0])})
                    continue
                probs = _softmax(row)
                order = np.argsort(-probs, kind="stable")[: self.top_k]
                preds = [{"label": self.id2label[int(i)], "score": float(probs[i])} for i in order]
                results.append({"text": item, "predictions": preds})
        return results

    # ------------------------------------------------------------------------------ question answering
    @staticmethod
    def _qa_items(inputs: Any) -> List[Dict[str, str]]:
        items = [inputs] if isinstance(inputs, dict) else inputs
        if not isinstance(items, list):
            raise TypeError(
                f"question_answering expects a {{'question', 'context'}} dict or a list of them; got "
                f"{type(inputs).__name__}"
            )
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("question", "context")):
                raise TypeError(f"input {i}: expected a dict with string 'question' and 'context', got {item!r:.80}")
        return items

    @staticmethod
    def _locate(context: str, best: Dict[str, Any], spans: List[Tuple[Any, np.ndarray, np.ndarray]]) -> Tuple[int, int]:
        """Character span of the best answer of ``postprocess_predictions``.

        Uses its ``start`` / ``end`` when it reports them; otherwise finds the window positions whose
        start / end logits are exactly the answer's and whose span is the answer's text.
        """
        text = best["text"]
        if "start" in best and "end" in best:
            return int(best["start"]), int(best["end"])
        for feature, start_row, end_row in spans:
            offsets = feature.offset_mapping
            starts = [i for i, span in enumerate(offsets) if span is not None and start_row[i] == best["start_logit"]]
            ends = [i for i, span in enumerate(offsets) if span is not None and end_row[i] == best["end_logit"]]
            for s in starts:
                for e in ends:
                    a, b = offsets[s][0], offsets[e][1]
                    if e >= s and context[a:b] == text:
                        return a, b
        found = context.find(text)  # not reached in practice: the span above always exists
        return (found, found + len(text)) if found >= 0 else (0, 0)

    def _answer(self, inputs: Any) -> List[Dict[str, Any]]:
        from .data.squad import SquadExample, collate_features, postprocess_predictions, prepare_eval_features

        items = self._qa_items(inputs)
        examples = [
            SquadExample(id=str(i), question=it["question"], context=it["context"]) for i, it in enumerate(items)
        ]
        features = prepare_eval_features(
            examples,
            self.tokenizer,
            max_seq_length=self.max_length,
            doc_stride=self.doc_stride,
            max_query_length=self.max_query_length,
        )
        start_rows: List[np.ndarray] = []
        end_rows: List[np.ndarray] = []
        for begin in range(0, len(features), self.batch_size):
            chunk = features[begin : begin + self.batch_size]
            output = self._forward(collate_features(chunk, pad_token_id=self.tokenizer.pad_token_id))
            if hasattr(output, "start_logits"):
                starts, ends = output.start_logits, output.end_logits
            else:
                starts, ends = output[0], output[1]
            starts, ends = _to_numpy(starts).astype("float64"), _to_numpy(ends).astype("float64")
            for row, feature in enumerate(chunk):
                n = len(feature.input_ids)
                start_rows.append(starts[row, :n])
                end_rows.append(ends[row, :n])
        _, nbest = postprocess_predictions(
            examples,
            features,
            start_rows,
            end_rows,
            n_best_size=self.n_best_size,
            max_answer_length=self.max_answer_length,
        )
        by_example: Dict[str, List[Tuple[Any, np.ndarray, np.ndarray]]] = {}
        for feature, s_row, e_row in zip(features, start_rows, end_rows):
            by_example.setdefault(feature.example_id, []).append((feature, s_row, e_row))
        results: List[Dict[str, Any]] = []
        for example in examples:
            best = nbest[example.id][0]
            if not best["text"]:
                results.append({"answer": "", "score": 0.0, "start": 0, "end": 0})
                continue
            start, end = self._locate(example.context, best, by_example.get(example.id, []))
            results.append(
                {"answer": example.context[start:end], "score": float(best["probability"]), "start": start, "end": end}
            )
        return results


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
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        offset = err.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, offset) + 1
        raise InputError(
            f"input file {name}: expected UTF-8 text, invalid byte at line {line} (byte offset {offset})"
        ) from None
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
