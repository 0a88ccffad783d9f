"""Turning SQuAD examples into BERT input windows ("features").

Each example becomes one or more features ``[CLS] question [SEP] context-window [SEP]``. A long
context is covered by sliding windows, as in the original BERT SQuAD recipe:

* the question is cut to ``max_query_length`` tokens;
* a window holds at most ``max_seq_length - len(question) - 3`` context tokens;
* consecutive windows start ``doc_stride`` context tokens apart (``doc_stride`` is the step between
  window starts, as in the original BERT ``run_squad.py`` and in PaddleNLP's own ``stride``; with the defaults
  384 / 128 / 64 windows overlap by at least 189 tokens), and the last window ends at the end of
  the context. A step never exceeds the window length, so no context token is skipped.

Tokenizer approach
------------------
``paddlenlp.transformers.BertFastTokenizer`` needs the ``fast_tokenizer`` extension
(``fast-tokenizer-python``), which is not installed and for which pip finds no distribution for
this environment (Python 3.11), so the slow ``BertTokenizer`` is what we have. In PaddleNLP 2.8.1
the slow tokenizer's own ``return_overflowing_tokens`` / ``stride`` / ``return_offsets_mapping``
path is not usable here: windows with offsets are only produced by the batch call, the question is never cut to
``max_query_length``, the window start is not reported, and the offsets come from
``get_offset_mapping``, which re-finds each token in the text by string search and misplaces
``[UNK]`` tokens (in dev-v1.1, 6 of 2,067 contexts: an unknown CJK character gets the span of the
space before it, the unknown IPA word "ˌnjuːkɑːsəl" only its first character).
So we compute context token offsets ourselves and build the windows from them:
:func:`tokenize_with_offsets` runs the tokenizer's own ``basic_tokenizer`` and
``wordpiece_tokenizer`` (the same steps as ``BertTokenizer._tokenize``) and aligns every word with
the original characters through a per-character normalization (cleaning, lower case, accent
stripping) that mirrors the basic tokenizer. A fast tokenizer (``is_fast``), if one is passed, is
asked for ``return_offsets_mapping`` directly; any other tokenizer falls back to
``get_offset_mapping``.
"""

from __future__ import annotations

import unicodedata
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .reader import SquadExample

__all__ = [
    "SquadFeature",
    "collate_features",
    "prepare_eval_features",
    "prepare_train_features",
    "tokenize_with_offsets",
]

Span = Tuple[int, int]


@dataclass
class SquadFeature:
    """One model input window of one example.

    Attributes:
        example_id: Id of the question this window belongs to.
        example_index: Position of that example in the list given to the ``prepare_*`` function.
        window_index: 0 for the first window of the example, 1 for the next, ...
        input_ids: ``[CLS] question [SEP] context-window [SEP]`` token ids (not padded).
        token_type_ids: 0 for ``[CLS]``, the question and the first ``[SEP]``; 1 after.
        offset_mapping: For every position, ``(start, end)`` character offsets into the example's
            context, or None for ``[CLS]``, question and ``[SEP]`` positions.
        context_start: Index, in the context's token list, of the first context token here.
        start_position: Training target: position of the answer's first token, or 0 (``[CLS]``)
            when this window does not hold the whole answer. None for eval features.
        end_position: Training target: position of the answer's last token (0 as above).
    """

    example_id: str
    example_index: int
    window_index: int
    input_ids: List[int]
    token_type_ids: List[int]
    offset_mapping: List[Optional[Span]]
    context_start: int
    start_position: Optional[int] = None
    end_position: Optional[int] = None

    @property
    def attention_mask(self) -> List[int]:
        """All ones: features are not padded (see :func:`collate_features`)."""
        return [1] * len(self.input_ids)


# --------------------------------------------------------------------------------------------
# Tokenization with character offsets
# --------------------------------------------------------------------------------------------


def _is_bert_whitespace(char: str) -> bool:
    """Whitespace as the BERT basic tokenizer sees it (it later splits with ``str.split``)."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs" or char.isspace()


def _is_bert_removed(char: str) -> bool:
    """Characters the BERT basic tokenizer deletes (NUL, U+FFFD, control characters)."""
    cp = ord(char)
    if cp == 0 or cp == 0xFFFD:
        return True
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def _normalize_char(char: str, lower: bool, strip_accents: bool) -> str:
    """Return what one original character becomes inside the basic tokenizer's words."""
    if _is_bert_removed(char) or _is_bert_whitespace(char):
        return ""
    if lower:
        char = char.lower()
    if strip_accents:
        char = "".join(c for c in unicodedata.normalize("NFD", char) if unicodedata.category(c) != "Mn")
    return "".join(c for c in char if not c.isspace())


def _fold(text: str) -> str:
    """Case and final-sigma folding used only to check the word/character alignment."""
    return text.lower().replace("ς", "σ")


def _bert_offsets(tokenizer: Any, text: str) -> Optional[Tuple[List[str], List[Span]]]:
    """Tokenize ``text`` like a slow BERT tokenizer and return tokens with character offsets.

    Returns None when a word cannot be aligned with the text (never seen on SQuAD; the caller then
    falls back to the tokenizer's own ``get_offset_mapping``).
    """
    basic = tokenizer.basic_tokenizer
    lower = bool(basic.do_lower_case)
    strip = basic.strip_accents is not False if lower else bool(basic.strip_accents)

    norm_chars: List[str] = []
    norm_to_orig: List[int] = []
    for idx, char in enumerate(text):
        for out in _normalize_char(char, lower, strip):
            norm_chars.append(out)
            norm_to_orig.append(idx)
    normalized = "".join(norm_chars)

    unk = tokenizer.unk_token
    tokens: List[str] = []
    offsets: List[Span] = []
    pos = 0
    for word in basic.tokenize(text, never_split=tokenizer.all_special_tokens):
        n = len(word)
        if _fold(normalized[pos : pos + n]) != _fold(word):
            return None
        if word in basic.never_split:
            pieces = [word]
        else:
            pieces = tokenizer.wordpiece_tokenizer.tokenize(word)
        lengths = [len(p) - 2 if k > 0 and p.startswith("##") else len(p) for k, p in enumerate(pieces)]
        whole_word = (pieces == [unk] and word != unk) or sum(lengths) != n
        piece_start = pos
        for piece, length in zip(pieces, lengths):
            if whole_word:
                a, b = pos, pos + n
            else:
                a, b = piece_start, piece_start + length
                piece_start = b
            tokens.append(piece)
            offsets.append((norm_to_orig[a], norm_to_orig[b - 1] + 1))
        pos += n
    if pos != len(normalized):
        return None
    return tokens, offsets


def tokenize_with_offsets(tokenizer: Any, text: str) -> Tuple[List[int], List[Span]]:
    """Tokenize ``text`` (no special tokens) and return token ids with character offsets.

    Args:
        tokenizer: A PaddleNLP BERT tokenizer: the slow ``BertTokenizer`` (offsets computed here, see
            the module docstring), a fast tokenizer (``is_fast``: its ``return_offsets_mapping`` is
            used), or any tokenizer with ``tokenize`` and ``get_offset_mapping``.
        text: The text to tokenize.

    Returns:
        ``(ids, offsets)``: one id and one ``(start, end)`` character span of ``text`` per token;
        ``text[start:end]`` is the original text of the token (the whole word for ``[UNK]``).
    """
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(encoded["input_ids"]), [(int(a), int(b)) for a, b in encoded["offset_mapping"]]
    result = None
    if getattr(tokenizer, "do_basic_tokenize", False) and hasattr(tokenizer, "wordpiece_tokenizer"):
        result = _bert_offsets(tokenizer, text)
        if result is None:
            warnings.warn(
                f"could not align BERT tokens with the text {text[:40]!r}...; using get_offset_mapping",
                stacklevel=2,
            )
    if result is None:
        tokens = tokenizer.tokenize(text)
        spans = [(int(a), int(b)) for a, b in tokenizer.get_offset_mapping(text)]
        if len(spans) != len(tokens):
            raise ValueError(f"tokenizer returned {len(tokens)} tokens but {len(spans)} offsets for {text[:40]!r}")
        result = (tokens, spans)
    tokens, spans = result
    return list(tokenizer.convert_tokens_to_ids(tokens)), spans


# --------------------------------------------------------------------------------------------
# Windows and features
# --------------------------------------------------------------------------------------------


def _window_spans(n_tokens: int, max_tokens: int, doc_stride: int) -> List[Tuple[int, int]]:
    """Return ``(start, length)`` of the sliding windows over ``n_tokens`` context tokens."""
    spans: List[Tuple[int, int]] = []
    start = 0
    while True:
        length = min(n_tokens - start, max_tokens)
        spans.append((start, length))
        if start + length >= n_tokens:
            return spans
        start += min(length, doc_stride)


def _answer_token_span(offsets: Sequence[Span], start_char: int, end_char: int) -> Optional[Tuple[int, int]]:
    """Return the first and last context token overlapping ``[start_char, end_char)``, if any."""
    first = next((i for i, (_, b) in enumerate(offsets) if b > start_char), None)
    if first is None or offsets[first][0] >= end_char:
        return None
    last = first
    while last + 1 < len(offsets) and offsets[last + 1][0] < end_char:
        last += 1
    return first, last


def _check_lengths(max_seq_length: int, doc_stride: int, max_query_length: int) -> None:
    """Reject window settings that leave no room for the context."""
    if max_query_length < 0 or doc_stride < 1:
        raise ValueError(f"need max_query_length >= 0 and doc_stride >= 1, got {max_query_length}, {doc_stride}")
    if max_seq_length - max_query_length - 3 < 1:
        raise ValueError(
            f"max_seq_length={max_seq_length} leaves no room for the context with "
            f"max_query_length={max_query_length} (needs max_seq_length >= max_query_length + 4)"
        )


def _build_features(
    examples: Sequence[SquadExample],
    tokenizer: Any,
    max_seq_length: int,
    doc_stride: int,
    max_query_length: int,
    with_targets: bool,
) -> List[SquadFeature]:
    """Shared window construction for train and eval features."""
    _check_lengths(max_seq_length, doc_stride, max_query_length)
    cls_id = tokenizer.convert_tokens_to_ids(tokenizer.cls_token)
    sep_id = tokenizer.convert_tokens_to_ids(tokenizer.sep_token)
    context_cache: Dict[str, Tuple[List[int], List[Span]]] = {}
    features: List[SquadFeature] = []
    for ex_index, example in enumerate(examples):
        if example.context not in context_cache:
            context_cache[example.context] = tokenize_with_offsets(tokenizer, example.context)
        ctx_ids, ctx_offsets = context_cache[example.context]
        query_ids = tokenize_with_offsets(tokenizer, example.question)[0][:max_query_length]
        prefix = len(query_ids) + 2  # [CLS] question [SEP]
        max_ctx = max_seq_length - prefix - 1

        answer_span = None
        if with_targets and example.answers:
            answer = example.answers[0]
            start_char = int(answer["answer_start"])
            answer_span = _answer_token_span(ctx_offsets, start_char, start_char + len(answer["text"]))

        for w_index, (w_start, w_len) in enumerate(_window_spans(len(ctx_ids), max_ctx, doc_stride)):
            w_end = w_start + w_len
            feature = SquadFeature(
                example_id=example.id,
                example_index=ex_index,
                window_index=w_index,
                input_ids=[cls_id] + query_ids + [sep_id] + ctx_ids[w_start:w_end] + [sep_id],
                token_type_ids=[0] * prefix + [1] * (w_len + 1),
                offset_mapping=[None] * prefix + list(ctx_offsets[w_start:w_end]) + [None],
                context_start=w_start,
            )
            if with_targets:
                if answer_span is not None and w_start <= answer_span[0] and answer_span[1] < w_end:
                    feature.start_position = answer_span[0] - w_start + prefix
                    feature.end_position = answer_span[1] - w_start + prefix
                else:
                    feature.start_position = feature.end_position = 0
            features.append(feature)
    return features


def prepare_train_features(
    examples: Sequence[SquadExample],
    tokenizer: Any,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
) -> List[SquadFeature]:
    """Build training windows with answer targets taken from each example's FIRST answer.

    ``start_position`` / ``end_position`` index the first and last tokens overlapping the answer's
    characters when the window holds the whole answer, and are both 0 (``[CLS]``) otherwise (also
    for an example without answers).

    Args:
        examples: Examples from :func:`~paddle_binbert.data.squad.read_squad_examples`.
        tokenizer: A PaddleNLP ``BertTokenizer`` (see :func:`tokenize_with_offsets`).
        max_seq_length: Maximum window length in tokens, special tokens included.
        doc_stride: Step, in context tokens, between the starts of consecutive windows.
        max_query_length: Questions are cut to this many tokens.

    Returns:
        Features in example order, windows of one example consecutive.
    """
    return _build_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length, with_targets=True)


def prepare_eval_features(
    examples: Sequence[SquadExample],
    tokenizer: Any,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
) -> List[SquadFeature]:
    """Build evaluation windows (no targets); pass them with the model's logits to post-processing.

    Args:
        examples: Examples from :func:`~paddle_binbert.data.squad.read_squad_examples`.
        tokenizer: A PaddleNLP ``BertTokenizer`` (see :func:`tokenize_with_offsets`).
        max_seq_length: Maximum window length in tokens, special tokens included.
        doc_stride: Step, in context tokens, between the starts of consecutive windows.
        max_query_length: Questions are cut to this many tokens.

    Returns:
        Features in example order, windows of one example consecutive.
    """
    return _build_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length, with_targets=False)


def collate_features(
    features: Sequence[SquadFeature],
    pad_token_id: int = 0,
    max_length: Optional[int] = None,
) -> Dict[str, np.ndarray]:
    """Pad a batch of features into int64 arrays.

    Args:
        features: The features of one batch.
        pad_token_id: Id written into padded ``input_ids`` positions.
        max_length: Pad to this length (default: the longest feature of the batch).

    Returns:
        ``input_ids``, ``token_type_ids`` and ``attention_mask`` of shape ``[batch, length]``, plus
        ``start_positions`` / ``end_positions`` of shape ``[batch]`` when every feature has targets.
    """
    length = max((len(f.input_ids) for f in features), default=0)
    if max_length is not None:
        if max_length < length:
            raise ValueError(f"max_length={max_length} is shorter than a feature ({length} tokens)")
        length = max_length
    batch = len(features)
    input_ids = np.full((batch, length), pad_token_id, dtype="int64")
    token_type_ids = np.zeros((batch, length), dtype="int64")
    attention_mask = np.zeros((batch, length), dtype="int64")
    for row, feature in enumerate(features):
        n = len(feature.input_ids)
        input_ids[row, :n] = feature.input_ids
        token_type_ids[row, :n] = feature.token_type_ids
        attention_mask[row, :n] = 1
    out = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}
    if features and all(f.start_position is not None for f in features):
        out["start_positions"] = np.array([f.start_position for f in features], dtype="int64")
        out["end_positions"] = np.array([f.end_position for f in features], dtype="int64")
    return out
