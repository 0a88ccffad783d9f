"""The request format of PaddleNLP's SimpleServer (``paddlenlp.server``), checked without PaddleNLP.

PaddleNLP's clients post ``{"data": ..., "parameters": {...}}`` to ``/taskflow/<name>`` and read
``{"result": ...}``; its Taskflow handler runs the task on ``data["text"]``. Accepted ``data``:

    text_classification   {"text": "a text"}                          one input
                          {"text": ["a text", ["a text", "its pair"]]}  texts and / or pairs
                          {"text": [...], "text_pair": [...]}           pairs, zipped (as PaddleNLP's
                                                                        model clients send them)
                          "a text" or [...]                             the same without the wrapper
    question_answering    {"question": ..., "context": ...}           strings, or equal-length lists
                          {"text": {"question": ..., "context": ...}}  or a list of such dicts
                          [{"question": ..., "context": ...}, ...]

``parameters`` (optional, a JSON object): ``top_k`` for classification (labels per input); other
names (``batch_size``, ``max_seq_len``, ``schema``, ... which PaddleNLP's clients may send) are
ignored, as PaddleNLP's Taskflow handler does.

:func:`parse_request` turns a body into the list of model inputs or raises :class:`RequestError` with
the HTTP status (400 unreadable JSON, 413 too large, 422 well-formed JSON of the wrong shape) and a
message naming the offending field.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["Limits", "ParsedRequest", "RequestError", "parse_json", "parse_request"]

TASKS = ("text_classification", "question_answering")
#: the parameters each task reads from a request; any other name is ignored
REQUEST_PARAMETERS = {"text_classification": ("top_k",), "question_answering": ()}


class RequestError(Exception):
    """A request the server refuses: ``status`` (4xx) and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message


@dataclass(frozen=True)
class Limits:
    """Bounds on one request: body bytes, inputs (items), characters per text."""

    max_request_bytes: int = 1 << 20
    max_items: int = 256
    max_text_chars: int = 20000

    def as_dict(self) -> Dict[str, int]:
        return {
            "max_request_bytes": self.max_request_bytes,
            "max_items": self.max_items,
            "max_text_chars": self.max_text_chars,
        }


@dataclass
class ParsedRequest:
    """The model inputs of one request, and the parameters it set."""

    items: List[Any]
    parameters: Dict[str, Any] = field(default_factory=dict)
    ignored: List[str] = field(default_factory=list)


def _kind(value: Any) -> str:
    """The JSON type name of a parsed value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, numbers.Number):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    """The JSON value of ``body`` (UTF-8, strict: no NaN / Infinity); RequestError 400 otherwise."""
    if not body or not body.strip():
        raise RequestError(400, 'empty request body; send a JSON object such as {"data": {"text": "..."}}')
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(400, f"the request body is not UTF-8: {err}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise RequestError(400, "the request body is nested too deeply") from None
    except ValueError as err:  # JSONDecodeError, too many digits, NaN
        raise RequestError(400, f"the request body is not valid JSON: {err}") from None


def _check_text(value: Any, where: str, limits: Limits) -> str:
    if not isinstance(value, str):
        raise RequestError(422, f"{where} must be a string, got {_kind(value)}")
    if len(value) > limits.max_text_chars:
        raise RequestError(
            413, f"{where} has {len(value)} characters; this server accepts at most {limits.max_text_chars}"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(422, f"{where} is not valid Unicode (it holds a lone surrogate)") from None
    return value


def _check_count(count: int, limits: Limits) -> None:
    if count == 0:
        raise RequestError(422, "data is empty: send at least one input")
    if count > limits.max_items:
        raise RequestError(413, f"the request has {count} inputs; this server accepts at most {limits.max_items}")


def _classification_items(data: Any, limits: Limits) -> List[Any]:
    pairs: Optional[Any] = None
    where = "data"
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"text", "text_pair"})
        if unknown:
            raise RequestError(
                422, f"unknown key(s) {unknown} in data; text_classification reads 'text' (and 'text_pair')"
            )
        if "text" not in data:
            raise RequestError(422, 'data has no \'text\': send {"data": {"text": "..." or [...]}}')
        texts, pairs, where = data["text"], data.get("text_pair"), "data.text"
    else:
        texts = data
    if isinstance(texts, str):
        _check_count(1, limits)
        if pairs is None:
            return [_check_text(texts, where, limits)]
        return [(_check_text(texts, where, limits), _check_text(pairs, "data.text_pair", limits))]
    if not isinstance(texts, list):
        raise RequestError(
            422, f"{where} must be a string or an array of strings / [text, pair] arrays, got {_kind(texts)}"
        )
    _check_count(len(texts), limits)
    if pairs is not None:
        if not isinstance(pairs, list) or len(pairs) != len(texts):
            got = f"an array of {len(pairs)}" if isinstance(pairs, list) else _kind(pairs)
            raise RequestError(422, f"data.text_pair must be an array as long as data.text ({len(texts)}), got {got}")
        return [
            (_check_text(t, f"{where}[{i}]", limits), _check_text(p, f"data.text_pair[{i}]", limits))
            for i, (t, p) in enumerate(zip(texts, pairs))
        ]
    items: List[Any] = []
    for i, item in enumerate(texts):
        if isinstance(item, list):
            if len(item) != 2:
                raise RequestError(422, f"{where}[{i}] must be a string or a [text, pair] array of 2 strings")
            items.append(
                (_check_text(item[0], f"{where}[{i}][0]", limits), _check_text(item[1], f"{where}[{i}][1]", limits))
            )
        else:
            items.append(_check_text(item, f"{where}[{i}]", limits))
    return items


def _qa_item(value: Any, where: str, limits: Limits) -> Dict[str, str]:
    if not isinstance(value, dict):
        raise RequestError(422, f"{where} must be an object with 'question' and 'context', got {_kind(value)}")
    missing = [k for k in ("question", "context") if k not in value]
    if missing:
        raise RequestError(422, f"{where} has no {' / '.join(repr(k) for k in missing)}")
    unknown = sorted(set(value) - {"question", "context"})
    if unknown:
        raise RequestError(422, f"unknown key(s) {unknown} in {where}; expected 'question' and 'context'")
    return {
        "question": _check_text(value["question"], f"{where}.question", limits),
        "context": _check_text(value["context"], f"{where}.context", limits),
    }


def _qa_items(data: Any, limits: Limits) -> List[Dict[str, str]]:
    if isinstance(data, dict) and set(data) == {"text"}:
        data = data["text"]
        where = "data.text"
    else:
        where = "data"
    if isinstance(data, dict):
        if isinstance(data.get("question"), list) or isinstance(data.get("context"), list):
            questions, contexts = data.get("question"), data.get("context")
            if not (isinstance(questions, list) and isinstance(contexts, list) and len(questions) == len(contexts)):
                raise RequestError(422, f"{where}.question and {where}.context must be arrays of the same length")
            unknown = sorted(set(data) - {"question", "context"})
            if unknown:
                raise RequestError(422, f"unknown key(s) {unknown} in {where}; expected 'question' and 'context'")
            _check_count(len(questions), limits)
            return [
                {
                    "question": _check_text(q, f"{where}.question[{i}]", limits),
                    "context": _check_text(c, f"{where}.context[{i}]", limits),
                }
                for i, (q, c) in enumerate(zip(questions, contexts))
            ]
        _check_count(1, limits)
        return [_qa_item(data, where, limits)]
    if not isinstance(data, list):
        raise RequestError(
            422, f"{where} must be an object with 'question' and 'context' or an array of them, got {_kind(data)}"
        )
    _check_count(len(data), limits)
    return [_qa_item(item, f"{where}[{i}]", limits) for i, item in enumerate(data)]


def _int_parameter(name: str, value: Any, minimum: int) -> int:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok and not isinstance(value, numbers.Integral):
        ok = math.isfinite(float(value)) and float(value).is_integer()
    if not ok or int(value) < minimum:
        raise RequestError(422, f"parameters.{name} must be an integer >= {minimum}, got {json.dumps(value)[:80]}")
    return int(value)


def _parameters(task: str, value: Any) -> Tuple[Dict[str, Any], List[str]]:
    if value is None:
        return {}, []
    if not isinstance(value, dict):
        raise RequestError(422, f"parameters must be an object, got {_kind(value)}")
    known = REQUEST_PARAMETERS[task]
    out = {name: _int_parameter(name, value[name], 1) for name in known if name in value and value[name] is not None}
    return out, sorted(set(value) - set(known))


def parse_request(body: Any, task: str, limits: Limits) -> ParsedRequest:
    """The inputs of a request body (bytes, or an already parsed JSON value) for ``task``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid: {list(TASKS)}")
    payload = parse_json(body) if isinstance(body, (bytes, bytearray)) else body
    if not isinstance(payload, dict):
        raise RequestError(
            422, f'the request must be a JSON object {{"data": ..., "parameters": {{}}}}, got {_kind(payload)}'
        )
    unknown = sorted(set(payload) - {"data", "parameters"})
    if unknown:
        raise RequestError(422, f"unknown key(s) {unknown} in the request; expected 'data' and optional 'parameters'")
    if "data" not in payload:
        raise RequestError(422, "the request has no 'data'")
    data = payload["data"]
    if data is None:
        raise RequestError(422, "data is null: send at least one input")
    parameters, ignored = _parameters(task, payload.get("parameters"))
    items = _classification_items(data, limits) if task == "text_classification" else _qa_items(data, limits)
    return ParsedRequest(items=items, parameters=parameters, ignored=ignored)
