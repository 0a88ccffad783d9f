"""Reading SQuAD v1.1 JSON files into flat question examples.

The SQuAD v1.1 layout is ``{"version": "1.1", "data": [article, ...]}`` where each article is
``{"title": str, "paragraphs": [{"context": str, "qas": [qa, ...]}, ...]}`` and each question is
``{"id": str, "question": str, "answers": [{"text": str, "answer_start": int}, ...]}``.

Contexts are kept byte for byte (no stripping): ``answer_start`` is a character offset into the
unchanged context, and post-processing maps predictions back to the same characters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

from ...io_utils import decode_utf8, parse_json

__all__ = [
    "SquadExample",
    "SquadFormatError",
    "load_squad_json",
    "parse_squad",
    "read_squad_examples",
]

PathLike = Union[str, Path]


class SquadFormatError(ValueError):
    """A SQuAD file or object does not follow the v1.1 layout."""


@dataclass(frozen=True)
class SquadExample:
    """One question about one context.

    Attributes:
        id: The question id (unique within a file).
        question: The question text.
        context: The paragraph text, unchanged.
        answers: Gold answers as ``{"text": str, "answer_start": int}`` dicts, in file order;
            the first one is the training target.
        title: Title of the article the paragraph belongs to ("" when absent).
    """

    id: str
    question: str
    context: str
    answers: List[Dict[str, Any]] = field(default_factory=list)
    title: str = ""


def _preview(text: str, limit: int = 60) -> str:
    """Return ``repr(text)`` shortened to about ``limit`` characters."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def _require(obj: Any, key: str, expected: type, where: str) -> Any:
    """Return ``obj[key]`` after checking that it exists and has the expected type."""
    if not isinstance(obj, Mapping):
        raise SquadFormatError(f"{where}: expected a JSON object, found {type(obj).__name__}")
    if key not in obj:
        raise SquadFormatError(f"{where}: missing key {key!r}")
    value = obj[key]
    # bool is a subclass of int; an answer_start of true/false is malformed.
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise SquadFormatError(
            f"{where}: key {key!r} should be of type {expected.__name__}, found {type(value).__name__}"
        )
    return value


def load_squad_json(path: PathLike) -> Dict[str, Any]:
    """Load a SQuAD JSON file and return the top-level object (the dict with ``"data"``).

    Args:
        path: Path of the JSON file.

    Returns:
        The decoded JSON object.

    Raises:
        SquadFormatError: The file is not UTF-8 or not valid JSON (the message names the file,
            line and column) or its top level is not an object with a ``"data"`` list.
        OSError: The file cannot be read.
    """
    path = Path(path)
    with path.open("rb") as handle:
        raw = handle.read()
    text = decode_utf8(raw, str(path), SquadFormatError, "UTF-8 JSON")
    dataset = parse_json(text, str(path), SquadFormatError)
    if not isinstance(dataset, dict):
        raise SquadFormatError(f"{path}: top level should be a JSON object, found {type(dataset).__name__}")
    _require(dataset, "data", list, str(path))
    return dataset


def parse_squad(
    dataset: Mapping[str, Any],
    check_answers: bool = True,
    source: str = "<squad>",
) -> List[SquadExample]:
    """Flatten a decoded SQuAD v1.1 object into one :class:`SquadExample` per question.

    Args:
        dataset: The decoded JSON object (the dict with ``"data"``).
        check_answers: Check that every answer's text is found in the context at its
            ``answer_start``.
        source: Name used in error messages (usually the file name).

    Returns:
        The examples in file order.

    Raises:
        SquadFormatError: A key is missing or has the wrong type (the message names the key and
            the question id, or the article and paragraph), an ``answer_start`` does not match the
            answer text, or a question id occurs twice.
    """
    articles = _require(dataset, "data", list, source)
    examples: List[SquadExample] = []
    seen_ids: Dict[str, str] = {}
    for a_idx, article in enumerate(articles):
        a_loc = f"article {a_idx}"
        if not isinstance(article, Mapping):
            raise SquadFormatError(f"{source}: {a_loc}: expected a JSON object, found {type(article).__name__}")
        title = article.get("title", "")
        if not isinstance(title, str):
            raise SquadFormatError(
                f"{source}: {a_loc}: key 'title' should be of type str, found {type(title).__name__}"
            )
        if title:
            a_loc = f"{a_loc} ({title!r})"
        paragraphs = _require(article, "paragraphs", list, f"{source}: {a_loc}")
        for p_idx, paragraph in enumerate(paragraphs):
            p_loc = f"{a_loc}, paragraph {p_idx}"
            context = _require(paragraph, "context", str, f"{source}: {p_loc}")
            qas = _require(paragraph, "qas", list, f"{source}: {p_loc}")
            for q_idx, qa in enumerate(qas):
                qid = _require(qa, "id", str, f"{source}: {p_loc}, question {q_idx}")
                q_where = f"{source}: question id {qid!r} ({p_loc})"
                if qid in seen_ids:
                    raise SquadFormatError(f"{q_where}: duplicate question id, first seen in {seen_ids[qid]}")
                seen_ids[qid] = p_loc
                question = _require(qa, "question", str, q_where)
                raw_answers = _require(qa, "answers", list, q_where)
                answers = [
                    _parse_answer(raw, context, f"{q_where}, answer {n}", check_answers)
                    for n, raw in enumerate(raw_answers)
                ]
                examples.append(SquadExample(qid, question, context, answers, title))
    return examples


def _parse_answer(raw: Any, context: str, where: str, check: bool) -> Dict[str, Any]:
    """Validate one answer object and return it as ``{"text", "answer_start"}``."""
    text = _require(raw, "text", str, where)
    start = _require(raw, "answer_start", int, where)
    if check:
        found = context[start : start + len(text)] if 0 <= start <= len(context) else ""
        if start < 0 or start + len(text) > len(context) or found != text:
            raise SquadFormatError(
                f"{where}: answer_start {start} does not match the context: expected {_preview(text)}, "
                f"found {_preview(found)}"
            )
    return {"text": text, "answer_start": start}


def read_squad_examples(path: PathLike, check_answers: bool = True) -> List[SquadExample]:
    """Read a SQuAD v1.1 JSON file into examples (see :func:`parse_squad`).

    Args:
        path: Path of the JSON file (e.g. the official ``train-v1.1.json`` unchanged).
        check_answers: Check every ``answer_start`` against the context.

    Returns:
        One example per question, in file order.

    Raises:
        SquadFormatError: Invalid JSON or a malformed SQuAD layout.
    """
    return parse_squad(load_squad_json(path), check_answers=check_answers, source=str(path))


#: spellings of SQuAD v1.1 accepted as a task name (compared lower case without punctuation)
SQUAD_NAMES = ("squad", "squad1", "squad11", "squadv1", "squadv11")


def is_squad_task(task_name: Optional[str]) -> bool:
    """Whether a ``--task_name`` means SQuAD v1.1 (``squad``, ``SQuAD-v1.1``, ``squad1.1`` ...)."""
    if task_name is None:
        return False
    return "".join(ch for ch in str(task_name).lower() if ch.isalnum()) in SQUAD_NAMES


def subset_squad(dataset: Dict[str, Any], ids: set) -> Dict[str, Any]:
    """The decoded SQuAD object restricted to the questions whose id is in ``ids`` (structure kept,
    empty articles / paragraphs dropped)."""
    data = []
    for article in dataset["data"]:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            qas = [qa for qa in paragraph["qas"] if qa["id"] in ids]
            if qas:
                paragraphs.append({**paragraph, "qas": qas})
        if paragraphs:
            data.append({**article, "paragraphs": paragraphs})
    return {**dataset, "data": data}
