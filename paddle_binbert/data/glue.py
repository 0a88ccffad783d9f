"""Readers for local GLUE task folders in the official TSV format.

Each task folder holds ``train.tsv`` and ``dev.tsv`` (MNLI: ``dev_matched.tsv`` and
``dev_mismatched.tsv``), exactly as written by the standard ``download_glue_data.py``.
The readers accept the quirks of the original files:

* every file is read as TSV with quoting disabled (as ``csv.QUOTE_NONE`` would), because RTE, MRPC
  and STS-B sentences contain unbalanced double quotes: a row is one line (``\n``, ``\r\n`` or
  ``\r``) split on tabs, with no limit on the length of a field (the ``csv`` module stops at
  131,072 characters);
* a leading UTF-8 byte-order mark is dropped (MRPC);
* CoLA has no header row and its ``dev.tsv`` has no trailing newline;
* leading/trailing white space of the sentences is stripped (SST-2 sentences end with a space);
* STS-B labels are float similarity scores in ``[0, 5]``.

Anything else that does not fit the expected layout raises :class:`GlueFormatError` with the file,
the 1-based line number, the offending field and what was expected; so does a file without any
example row (empty, or a header only): :func:`check_glue_files` finds it before training starts.

An optional augmented training file (TinyBERT style) is read with ``split="train_aug"``: it is
``train_aug.tsv`` in the same folder, in the same format as ``train.tsv``.
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

logger = logging.getLogger(__name__)

__all__ = [
    "GLUE_TASKS",
    "GlueExample",
    "GlueFormatError",
    "GlueTaskSpec",
    "check_glue_files",
    "convert_examples_to_features",
    "get_task_spec",
    "glue_collator",
    "glue_split_path",
    "load_glue_features",
    "normalize_task_name",
    "read_glue_examples",
    "read_tsv_rows",
]


class GlueFormatError(ValueError):
    """A GLUE TSV file does not have the expected layout.

    The message names the file, the 1-based line number, the field and what was expected.
    The same facts are available as attributes ``path``, ``line`` and ``field``.
    """

    def __init__(self, path: str, line: int, field: str, problem: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.problem = problem
        super().__init__(f"{path}, line {line}, field {field!r}: {problem}")


@dataclass(frozen=True)
class GlueTaskSpec:
    """Description of one GLUE task in its official TSV format.

    Attributes:
        name: canonical task name (``"SST-2"``, ``"MNLI"``, ...).
        text_columns: header names of the text column(s): one for single-sentence tasks, two for pairs.
        label_column: header name of the label column.
        labels: the label strings, in the order of the class indices (empty for regression).
        is_regression: True for STS-B (float score, one output).
        has_header: whether the files start with a header row (False only for CoLA).
        dev_files: the file name(s) of the dev split(s), keyed by split name.
        main_metric: name of the metric used to pick the best checkpoint (see ``data.metrics``).
        positions: for header-less files, ``(text column indices, label index, number of columns)``.
    """

    name: str
    text_columns: Tuple[str, ...]
    label_column: str
    labels: Tuple[str, ...]
    is_regression: bool
    has_header: bool
    dev_files: Tuple[Tuple[str, str], ...]
    main_metric: str
    positions: Optional[Tuple[Tuple[int, ...], int, int]] = None

    @property
    def num_labels(self) -> int:
        """Number of model outputs: 1 for regression, else the number of classes."""
        return 1 if self.is_regression else len(self.labels)

    @property
    def is_pair(self) -> bool:
        """Whether the task has two text inputs."""
        return len(self.text_columns) == 2

    @property
    def dev_splits(self) -> Tuple[str, ...]:
        """Names of the dev splits (``("dev",)``, or MNLI's matched/mismatched)."""
        return tuple(split for split, _ in self.dev_files)

    @property
    def split_files(self) -> Dict[str, str]:
        """Mapping of every accepted split name to its file name."""
        files = {"train": "train.tsv", "train_aug": "train_aug.tsv"}
        files.update(dict(self.dev_files))
        if "dev" not in files:
            # MNLI: plain "dev" means the matched dev set
            files["dev"] = self.dev_files[0][1]
        return files


_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")

GLUE_TASKS: Dict[str, GlueTaskSpec] = {
    "CoLA": GlueTaskSpec(
        name="CoLA",
        text_columns=("sentence",),
        label_column="label",
        labels=_BINARY,
        is_regression=False,
        has_header=False,
        dev_files=(("dev", "dev.tsv"),),
        main_metric="mcc",
        # source, label, original annotation, sentence
        positions=((3,), 1, 4),
    ),
    "SST-2": GlueTaskSpec(
        name="SST-2",
        text_columns=("sentence",),
        label_column="label",
        labels=_BINARY,
        is_regression=False,
        has_header=True,
        dev_files=(("dev", "dev.tsv"),),
        main_metric="acc",
    ),
    "MRPC": GlueTaskSpec(
        name="MRPC",
        text_columns=("#1 String", "#2 String"),
        label_column="Quality",
        labels=_BINARY,
        is_regression=False,
        has_header=True,
        dev_files=(("dev", "dev.tsv"),),
        main_metric="acc",
    ),
    "STS-B": GlueTaskSpec(
        name="STS-B",
        text_columns=("sentence1", "sentence2"),
        label_column="score",
        labels=(),
        is_regression=True,
        has_header=True,
        dev_files=(("dev", "dev.tsv"),),
        main_metric="corr",
    ),
    "QQP": GlueTaskSpec(
        name="QQP",
        text_columns=("question1", "question2"),
        label_column="is_duplicate",
        labels=_BINARY,
        is_regression=False,
        has_header=True,
        dev_files=(("dev", "dev.tsv"),),
        main_metric="acc",
    ),
    "MNLI": GlueTaskSpec(
        name="MNLI",
        text_columns=("sentence1", "sentence2"),
        label_column="gold_label",
        labels=("contradiction", "entailment", "neutral"),
        is_regression=False,
        has_header=True,
        dev_files=(("dev_matched", "dev_matched.tsv"), ("dev_mismatched", "dev_mismatched.tsv")),
        main_metric="acc",
    ),
    "QNLI": GlueTaskSpec(
        name="QNLI",
        text_columns=("question", "sentence"),
        label_column="label",
        labels=_NLI2,
        is_regression=False,
        has_header=True,
        dev_files=(("dev", "dev.tsv"),),
        main_metric="acc",
    ),
    "RTE": GlueTaskSpec(
        name="RTE",
        text_columns=("sentence1", "sentence2"),
        label_column="label",
        labels=_NLI2,
        is_regression=False,
        has_header=True,
        dev_files=(("dev", "dev.tsv"),),
        main_metric="acc",
    ),
    "WNLI": GlueTaskSpec(
        name="WNLI",
        text_columns=("sentence1", "sentence2"),
        label_column="label",
        labels=_BINARY,
        is_regression=False,
        has_header=True,
        dev_files=(("dev", "dev.tsv"),),
        main_metric="acc",
    ),
}

STSB_MIN_SCORE = 0.0
STSB_MAX_SCORE = 5.0


def _alias_key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


# "sst-2", "sst2", "SST_2", "sts-b", "stsb", "mnli", ... all map to the canonical names.
_ALIASES: Dict[str, str] = {_alias_key(name): name for name in GLUE_TASKS}
_ALIASES.update({"mnlim": "MNLI", "mnlimm": "MNLI", "mnlimismatched": "MNLI", "mnlimatched": "MNLI"})


def normalize_task_name(task_name: str) -> str:
    """Return the canonical GLUE task name for ``task_name`` (case-insensitive, ``sst-2``/``sst2`` style).

    Raises:
        ValueError: the name is not a GLUE task; the message lists the valid names.
    """
    key = _alias_key(str(task_name))
    if key not in _ALIASES:
        raise ValueError(f"Unknown GLUE task {task_name!r}; valid task names: {', '.join(GLUE_TASKS)}")
    return _ALIASES[key]


def get_task_spec(task_name: str) -> GlueTaskSpec:
    """Return the :class:`GlueTaskSpec` of a task (any accepted spelling of the name)."""
    return GLUE_TASKS[normalize_task_name(task_name)]


def glue_split_path(data_dir: Union[str, os.PathLike], task_name: str, split: str) -> str:
    """Path of the TSV file holding ``split`` of ``task_name`` inside ``data_dir``.

    Accepted splits: ``train``, ``train_aug``, ``dev`` and, for MNLI, ``dev_matched`` /
    ``dev_mismatched`` (``dev`` is the matched set).

    Raises:
        ValueError: unknown task or split.
    """
    spec = get_task_spec(task_name)
    files = spec.split_files
    if split not in files:
        raise ValueError(f"Unknown split {split!r} for GLUE task {spec.name}; valid splits: {', '.join(files)}")
    return os.path.join(os.fspath(data_dir), files[split])


def _first_example_line(path: str, has_header: bool) -> Optional[int]:
    """1-based line number of the first example row of a TSV file (after the header), None without one.

    Reads only up to that row (cheap on big training files); bytes are not decoded.
    """
    header_seen = not has_header
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            if not header_seen:
                header_seen = True
                continue
            return number
    return None


def check_glue_files(
    data_dir: Union[str, os.PathLike],
    task_name: str,
    splits: Optional[Sequence[str]] = None,
    require_examples: bool = True,
) -> Dict[str, str]:
    """Check that the files of ``splits`` exist (default: train and every dev split) and return their paths.

    With ``require_examples`` (default) every file must also hold at least one example row after
    its header: an empty or header-only ``train.tsv`` / ``dev.tsv`` is refused here, before any
    model is loaded or trained (training on it would fail with an opaque error, or train and
    then find no dev metric). Only the lines up to the first example are read.

    Raises:
        ValueError: unknown task or split.
        FileNotFoundError: the folder or a file is missing; the message names the path and the expected file.
        GlueFormatError: a file without example rows (the message names it).
    """
    spec = get_task_spec(task_name)
    if splits is None:
        splits = ("train",) + spec.dev_splits
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"GLUE data folder {data_dir!r} does not exist; expected a folder with the {spec.name} files "
            f"({', '.join(sorted(set(spec.split_files[s] for s in splits)))})"
        )
    paths = {}
    for split in splits:
        path = glue_split_path(data_dir, spec.name, split)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} not found: expected the {spec.name} {split} file {os.path.basename(path)!r} in {data_dir}"
            )
        if require_examples:
            _require_examples(path, spec, split)
        paths[split] = path
    return paths


def _require_examples(path: str, spec: GlueTaskSpec, split: str) -> None:
    """Raise :class:`GlueFormatError` when ``path`` holds no example row."""
    if _first_example_line(path, spec.has_header) is not None:
        return
    with open(path, "rb") as handle:
        lines = sum(1 for _ in handle)
    what = "the file is empty" if lines == 0 or os.path.getsize(path) == 0 else "the file has no example rows"
    if spec.has_header and lines:
        what = "the file holds only a header row, no examples"
    raise GlueFormatError(
        path,
        max(lines, 1),
        "<rows>",
        f"{what}; the {spec.name} {split} split needs at least one example row"
        + (" after the header" if spec.has_header else ""),
    )


@dataclass
class GlueExample:
    """One GLUE example.

    Attributes:
        guid: ``"<split>-<n>"`` with ``n`` the 0-based example index in the file.
        text_a: first (or only) sentence, stripped of surrounding white space.
        text_b: second sentence for pair tasks, else None.
        label: class index into ``GlueTaskSpec.labels`` (int) or the STS-B score (float).
    """

    guid: str
    text_a: str
    text_b: Optional[str]
    label: Union[int, float]


def _decode(path: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        # the utf-8-sig codec reports offsets relative to the data after the BOM
        offset = err.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, offset) + 1
        raise GlueFormatError(path, line, "<bytes>", f"expected UTF-8 text, invalid byte at offset {offset}") from None


def _tsv_rows(text: str) -> Iterator[Tuple[int, List[str]]]:
    """``(1-based line number, fields)`` of every line of a TSV text without quoting.

    The same rows as ``csv.reader(..., delimiter="\\t", quoting=csv.QUOTE_NONE)`` (lines end at
    ``\\n``, ``\\r\\n`` or ``\\r``; an empty line gives ``[""]``), without the csv module's field
    size limit (131,072 characters), so a long field cannot fail with a bare ``_csv.Error``.
    """
    for number, line in enumerate(io.StringIO(text, newline=""), 1):
        if line.endswith("\r\n"):
            line = line[:-2]
        elif line.endswith(("\n", "\r")):
            line = line[:-1]
        yield number, line.split("\t")


def read_tsv_rows(path: str) -> List[List[str]]:
    """The non-blank rows of a GLUE TSV file, header included, as read by :func:`read_glue_examples`
    (UTF-8 with an optional BOM, no quoting); for tools that rewrite a file in its own columns."""
    with open(path, "rb") as handle:
        text = _decode(path, handle.read())
    return [row for _, row in _tsv_rows(text) if row and not (len(row) == 1 and not row[0].strip())]


def _parse_label(spec: GlueTaskSpec, path: str, line: int, value: str) -> Union[int, float]:
    value = value.strip()
    if spec.is_regression:
        try:
            score = float(value)
        except ValueError:
            raise GlueFormatError(
                path, line, spec.label_column, f"expected a float score in [0, 5], got {value!r}"
            ) from None
        if not (math.isfinite(score) and STSB_MIN_SCORE <= score <= STSB_MAX_SCORE):
            raise GlueFormatError(path, line, spec.label_column, f"expected a float score in [0, 5], got {value!r}")
        return score
    try:
        return spec.labels.index(value)
    except ValueError:
        raise GlueFormatError(
            path, line, spec.label_column, f"label {value!r} is not in the label list {list(spec.labels)}"
        ) from None


def _column_layout(spec: GlueTaskSpec, path: str, header: Optional[List[str]]) -> Tuple[List[int], int, int]:
    """Return (text column indices, label column index, expected number of columns)."""
    if header is None:
        assert spec.positions is not None
        text_idx, label_idx, ncols = spec.positions
        return list(text_idx), label_idx, ncols
    names = [name.strip() for name in header]
    indices = []
    for column in spec.text_columns + (spec.label_column,):
        if column not in names:
            raise GlueFormatError(
                path,
                1,
                column,
                f"header has no column {column!r}; expected a {spec.name} header with columns "
                f"{list(spec.text_columns) + [spec.label_column]}, got {names}",
            )
        indices.append(names.index(column))
    return indices[:-1], indices[-1], len(names)


def read_glue_examples(
    data_dir: Union[str, os.PathLike],
    task_name: str,
    split: str,
    skip_malformed: bool = False,
) -> List[GlueExample]:
    """Read one split of a GLUE task from its official TSV file.

    Args:
        data_dir: folder with the task's files (e.g. ``glue/SST-2``).
        task_name: GLUE task name, case-insensitive (``"sst-2"``, ``"SST2"``, ``"mnli"``...).
        split: ``train``, ``dev``, ``train_aug`` or, for MNLI, ``dev_matched`` / ``dev_mismatched``.
        skip_malformed: log and skip malformed rows instead of raising (off by default).

    Returns:
        The examples in file order; blank lines are ignored. A header-only file gives an empty
        list here (:func:`load_glue_features` and :func:`check_glue_files` refuse it).

    Raises:
        ValueError: unknown task or split.
        FileNotFoundError: the file is missing.
        GlueFormatError: a row does not fit the format (wrong column count, unknown label, bad score).
    """
    spec = get_task_spec(task_name)
    path = check_glue_files(data_dir, spec.name, [split], require_examples=False)[split]
    with open(path, "rb") as handle:
        text = _decode(path, handle.read())

    header: Optional[List[str]] = None
    layout: Optional[Tuple[List[int], int, int]] = None
    examples: List[GlueExample] = []
    skipped = 0
    for line, row in _tsv_rows(text):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if spec.has_header and header is None:
            header = row
            layout = _column_layout(spec, path, header)
            continue
        if layout is None:
            layout = _column_layout(spec, path, None)
        text_idx, label_idx, ncols = layout
        try:
            if len(row) != ncols:
                raise GlueFormatError(path, line, "<row>", f"expected {ncols} tab-separated columns, got {len(row)}")
            label = _parse_label(spec, path, line, row[label_idx])
        except GlueFormatError as err:
            if not skip_malformed:
                raise
            skipped += 1
            logger.warning("skipping malformed row: %s", err)
            continue
        texts = [row[i].strip() for i in text_idx]
        examples.append(
            GlueExample(
                guid=f"{split}-{len(examples)}",
                text_a=texts[0],
                text_b=texts[1] if len(texts) > 1 else None,
                label=label,
            )
        )
    if spec.has_header and header is None:
        raise GlueFormatError(path, 1, "<header>", "file is empty; expected a header row")
    if skipped:
        logger.warning("%s: skipped %d malformed rows", path, skipped)
    return examples


def convert_examples_to_features(
    examples: Sequence[GlueExample],
    tokenizer: Any,
    max_seq_length: int,
    task_name: str,
    batch_size: int = 1000,
) -> List[Dict[str, Any]]:
    """Tokenize examples into model features (no padding: the collator pads each batch).

    Args:
        examples: output of :func:`read_glue_examples`.
        tokenizer: a PaddleNLP tokenizer (called with ``truncation=True, max_length=max_seq_length``).
        max_seq_length: maximum number of tokens including ``[CLS]``/``[SEP]``.
        task_name: the GLUE task (decides the label type).
        batch_size: number of examples handed to the tokenizer per call.

    Returns:
        One dict per example with ``input_ids``, ``token_type_ids`` (lists of int) and ``labels``
        (int class index, or ``numpy.float32`` score for STS-B).
    """
    import numpy as np

    spec = get_task_spec(task_name)
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length must be at least 3, got {max_seq_length}")
    features: List[Dict[str, Any]] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        texts_a = [ex.text_a for ex in chunk]
        kwargs = dict(
            max_length=max_seq_length,
            truncation=True,
            padding=False,
            return_token_type_ids=True,
            return_attention_mask=False,
        )
        if spec.is_pair:
            encoded = tokenizer(texts_a, [ex.text_b or "" for ex in chunk], **kwargs)
        else:
            encoded = tokenizer(texts_a, **kwargs)
        for i, ex in enumerate(chunk):
            label = np.float32(ex.label) if spec.is_regression else int(ex.label)
            features.append(
                {
                    "input_ids": list(encoded["input_ids"][i]),
                    "token_type_ids": list(encoded["token_type_ids"][i]),
                    "labels": label,
                }
            )
    return features


def load_glue_features(
    data_dir: Union[str, os.PathLike],
    task_name: str,
    split: str,
    tokenizer: Any,
    max_seq_length: int,
    max_examples: Optional[int] = None,
) -> List[Dict[str, Any]]:
    """Read a split and tokenize it; ``max_examples`` keeps only the first N examples of the file.

    Raises:
        GlueFormatError: besides the format errors of :func:`read_glue_examples`, a file without
            any example (empty or header only), naming the file: training or evaluating on zero
            examples fails later with an opaque error (or a partial checkpoint).
    """
    examples = read_glue_examples(data_dir, task_name, split)
    if not examples:
        spec = get_task_spec(task_name)
        _require_examples(glue_split_path(data_dir, spec.name, split), spec, split)
        path = glue_split_path(data_dir, spec.name, split)  # only blank-looking rows (e.g. U+3000 spaces)
        raise GlueFormatError(path, 1, "<rows>", f"the file has no example rows; the {split} split needs at least one")
    if max_examples is not None:
        if max_examples < 1:
            raise ValueError(f"max_examples must be positive, got {max_examples}")
        examples = examples[:max_examples]
    return convert_examples_to_features(examples, tokenizer, max_seq_length, task_name)


def glue_collator(tokenizer: Any, return_attention_mask: bool = True) -> Any:
    """PaddleNLP ``DataCollatorWithPadding`` for GLUE features.

    It pads ``input_ids`` (with the tokenizer's pad id) and ``token_type_ids`` (with 0) to the longest
    sequence of the batch, returns int64 ``paddle.Tensor`` s, keeps ``labels`` (int64, or float32 for
    STS-B) and, with ``return_attention_mask=True`` (default), adds an int64 ``attention_mask``
    (1 = token, 0 = padding). Without it, BERT derives the mask from the pad id.
    """
    from paddlenlp.data import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer, return_attention_mask=return_attention_mask)
