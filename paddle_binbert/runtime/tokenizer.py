"""BERT WordPiece tokenization for the runtime, on the ``tokenizers`` package (no PaddleNLP).

:class:`WordPieceTokenizer` reads a packed folder's ``vocab.txt`` and ``tokenizer_config.json`` and
gives the ids of PaddleNLP's ``BertTokenizer`` on the same folder (tested on every SST-2 dev sentence
and every SQuAD v1.1 dev question and context, see ``tests/runtime/test_tokenizer.py``). The
pipeline, step by step as PaddleNLP 2.8's ``BertTokenizer`` does it:

- special tokens (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]``, ``[MASK]``) found in the text are kept
  whole, case-sensitively (PaddleNLP's ``tokens_trie``);
- cleaning (NUL, U+FFFD and control characters removed, whitespace to spaces), lower case
  (``do_lower_case``; per character, so a final capital sigma becomes ``σ``, as PaddleNLP's
  per-character ``lower()``), accent stripping (NFD, then no ``Mn`` characters; ``strip_accents``
  None follows ``do_lower_case``): ``tokenizers``' ``BertNormalizer``;
- split on whitespace, then every punctuation *and symbol* character is a word of its own
  (PaddleNLP splits Unicode symbols ``S*`` and a few listed code points too, which ``tokenizers``'
  ``BertPreTokenizer`` does not) and so is every CJK ideograph (PaddleNLP's ranges);
- greedy longest-match WordPiece with ``##`` continuations, ``[UNK]`` for a word without a split or
  longer than 100 characters;
- ``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]`` with token types 0 / 1, and PaddleNLP's
  ``longest_first`` truncation (one token at a time from the longer sequence, the second on ties).

Offsets (``return_offsets_mapping``) are character spans of the original text, as the SQuAD
pipeline (:func:`paddle_binbert.data.squad.tokenize_with_offsets`) expects from a fast tokenizer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

__all__ = ["WordPieceTokenizer", "CONFIG_NAME", "VOCAB_NAME"]

VOCAB_NAME = "vocab.txt"
CONFIG_NAME = "tokenizer_config.json"
SPECIAL_MAP_NAME = "special_tokens_map.json"
SPECIAL_KEYS = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
DEFAULT_SPECIALS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}
# One-character words after normalization: ASCII non-alphanumerics, Unicode punctuation (P*) and
# symbols (S*), the extra code points of PaddleNLP's _is_symbol, and the CJK ranges of its
# BasicTokenizer._is_chinese_char (Oniguruma syntax).
_ISOLATED = (
    r"[\x{21}-\x{2F}\x{3A}-\x{40}\x{5B}-\x{60}\x{7B}-\x{7E}\p{P}\p{S}"
    r"\x{AD}\x{B2}\x{BA}\x{3007}\x{B5}\x{D8}\x{14B}\x{1B1}"
)
_CJK = (
    r"\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}"
    r"\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}"
)

Encoding = Dict[str, List[Any]]
TextInput = Union[str, Tuple[str, str], List[str]]


def _read_json(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return data


def _token_text(value: Any) -> Optional[str]:
    """A special token as saved by PaddleNLP: a string or an AddedToken dict ``{"content": ...}``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def load_vocab(path: Union[str, os.PathLike]) -> Dict[str, int]:
    """``vocab.txt`` as ``{token: line number}`` (a repeated token keeps its last line, as
    PaddleNLP's ``Vocab.load_vocabulary``)."""
    vocab: Dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            vocab[line.rstrip("\n")] = index
    return vocab


class WordPieceTokenizer:
    """PaddleNLP ``BertTokenizer``-compatible WordPiece tokenizer built on ``tokenizers``.

    Args:
        vocab_file: ``vocab.txt`` (one token per line, the id is the line number).
        do_lower_case, strip_accents, tokenize_chinese_chars: as PaddleNLP's ``BertTokenizer``.
        unk_token, sep_token, pad_token, cls_token, mask_token: the special tokens (all must be in
            the vocabulary).
        model_max_length: kept for reference (``max_length`` of each call decides truncation).

    Build it from a folder with :meth:`from_pretrained`. Calls: :meth:`tokenize`, :meth:`encode`
    (one text or pair, like ``BertTokenizer.__call__``), :meth:`encode_batch` (many, parallel in
    ``tokenizers``), :meth:`convert_tokens_to_ids`. ``is_fast`` is True: the SQuAD feature code asks it
    for offsets directly.
    """

    is_fast = True

    def __init__(
        self,
        vocab_file: Union[str, os.PathLike],
        do_lower_case: bool = True,
        strip_accents: Optional[bool] = None,
        tokenize_chinese_chars: bool = True,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        model_max_length: Optional[int] = None,
    ) -> None:
        try:
            from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers
            from tokenizers.models import WordPiece
        except ImportError as err:  # pragma: no cover - a dependency of the runtime
            raise ImportError(
                "paddle_binbert.runtime's tokenizer needs the `tokenizers` package: "
                "pip install -r requirements-runtime.txt"
            ) from err
        self.vocab_file = str(vocab_file)
        self.vocab = load_vocab(vocab_file)
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.unk_token, self.sep_token, self.pad_token = unk_token, sep_token, pad_token
        self.cls_token, self.mask_token = cls_token, mask_token
        self.model_max_length = model_max_length
        self.all_special_tokens = [unk_token, sep_token, pad_token, cls_token, mask_token]
        missing = [t for t in (unk_token, sep_token, pad_token, cls_token) if t not in self.vocab]
        if missing:
            raise ValueError(f"{vocab_file}: the special token(s) {missing} are not in the vocabulary")

        tokenizer = Tokenizer(WordPiece(self.vocab, unk_token=unk_token, max_input_chars_per_word=100))
        tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=False, strip_accents=strip_accents, lowercase=self.do_lower_case
        )
        isolated = _ISOLATED + (_CJK if self.tokenize_chinese_chars else "") + "]"
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(isolated), behavior="isolated")]
        )
        specials = [t for t in dict.fromkeys(self.all_special_tokens) if t in self.vocab]
        tokenizer.add_special_tokens([AddedToken(t, single_word=False, normalized=False) for t in specials])
        self._tokenizer = tokenizer
        self.unk_token_id = self.vocab[unk_token]
        self.sep_token_id = self.vocab[sep_token]
        self.pad_token_id = self.vocab[pad_token]
        self.cls_token_id = self.vocab[cls_token]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, folder: Union[str, os.PathLike]) -> WordPieceTokenizer:
        """The tokenizer saved in ``folder`` (``vocab.txt``; ``tokenizer_config.json`` and
        ``special_tokens_map.json`` when present, as PaddleNLP's ``save_pretrained`` writes them).

        Raises ``FileNotFoundError`` without ``vocab.txt`` and ``ValueError`` for options the
        runtime does not implement (``do_basic_tokenize: false``, a custom ``never_split`` list,
        ``tokenizer_class`` other than ``BertTokenizer``).
        """
        folder = Path(folder)
        vocab = folder / VOCAB_NAME
        if not vocab.is_file():
            raise FileNotFoundError(f"{folder} holds no {VOCAB_NAME}: the runtime tokenizer needs the tokenizer files")
        config = _read_json(folder / CONFIG_NAME)
        specials = dict(DEFAULT_SPECIALS)
        for source in (_read_json(folder / SPECIAL_MAP_NAME), config):
            for key in SPECIAL_KEYS:
                text = _token_text(source.get(key))
                if text is not None:
                    specials[key] = text
        tokenizer_class = config.get("tokenizer_class", "BertTokenizer")
        if tokenizer_class not in (None, "BertTokenizer", "BertFastTokenizer"):
            raise ValueError(
                f"{folder / CONFIG_NAME}: tokenizer_class {tokenizer_class!r}; "
                "the runtime implements BertTokenizer only"
            )
        if config.get("do_basic_tokenize", True) is False:
            raise ValueError(f"{folder / CONFIG_NAME}: do_basic_tokenize=false is not implemented by the runtime")
        if config.get("never_split"):
            raise ValueError(f"{folder / CONFIG_NAME}: a never_split list is not implemented by the runtime")
        return cls(
            vocab,
            do_lower_case=bool(config.get("do_lower_case", True)),
            strip_accents=config.get("strip_accents"),
            tokenize_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
            model_max_length=config.get("model_max_length"),
            **specials,
        )

    # ------------------------------------------------------------------ tokens
    def tokenize(self, text: str) -> List[str]:
        """The WordPiece tokens of ``text`` (no special tokens added)."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).tokens)

    def convert_tokens_to_ids(self, tokens: Union[str, Sequence[str]]) -> Union[int, List[int]]:
        """Id of a token (``[UNK]``'s for an unknown one), or the ids of a list of tokens."""
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_token_id)
        return [self.vocab.get(t, self.unk_token_id) for t in tokens]

    def __len__(self) -> int:
        return len(self.vocab)

    # ------------------------------------------------------------------ encoding
    def _pieces(self, texts: Sequence[str]) -> List[Any]:
        return self._tokenizer.encode_batch(list(texts), add_special_tokens=False)

    def _assemble(self, a: List[int], b: Optional[List[int]], max_length: Optional[int]) -> Encoding:
        """``[CLS] a [SEP] (b [SEP])`` with PaddleNLP's longest_first truncation to ``max_length``."""
        special = 3 if b is not None else 2
        if max_length is not None and len(a) + (len(b) if b is not None else 0) + special > max_length:
            remove = len(a) + (len(b) if b is not None else 0) + special - max_length
            if b is None:
                if len(a) > remove:  # PaddleNLP logs an error and keeps everything otherwise
                    a = a[:-remove]
            else:
                for _ in range(remove):
                    if len(a) > len(b):
                        a = a[:-1]
                    else:
                        b = b[:-1]
        ids = [self.cls_token_id, *a, self.sep_token_id]
        types = [0] * len(ids)
        if b is not None:
            ids += [*b, self.sep_token_id]
            types += [1] * (len(b) + 1)
        return {"input_ids": ids, "token_type_ids": types}

    def encode(
        self,
        text: str,
        text_pair: Optional[str] = None,
        max_length: Optional[int] = None,
        truncation: bool = False,
        add_special_tokens: bool = True,
        return_offsets_mapping: bool = False,
    ) -> Encoding:
        """One text (or pair), as PaddleNLP's ``BertTokenizer(text, text_pair=..., max_length=...,
        truncation=True)``: ``{"input_ids", "token_type_ids"}`` (+ ``"offset_mapping"`` without
        special tokens, for a single text: ``(start, end)`` character spans of ``text``)."""
        if not add_special_tokens:
            if text_pair is not None:
                raise ValueError("add_special_tokens=False takes a single text")
            enc = self._tokenizer.encode(text, add_special_tokens=False)
            out: Encoding = {"input_ids": list(enc.ids), "token_type_ids": [0] * len(enc.ids)}
            if return_offsets_mapping:
                out["offset_mapping"] = [(int(s), int(e)) for s, e in enc.offsets]
            return out
        if return_offsets_mapping:
            raise ValueError("offsets are returned without special tokens only (add_special_tokens=False)")
        pieces = self._pieces([text] if text_pair is None else [text, text_pair])
        pair = list(pieces[1].ids) if text_pair is not None else None
        return self._assemble(list(pieces[0].ids), pair, max_length if truncation else None)

    __call__ = encode

    def encode_batch(
        self, items: Iterable[Union[str, Tuple[str, Optional[str]]]], max_length: Optional[int] = None
    ) -> List[Encoding]:
        """Many texts or ``(text, pair)`` tuples (pair may be None), truncated to ``max_length``
        (special tokens included) as :meth:`encode` with ``truncation=True``."""
        pairs = [(item, None) if isinstance(item, str) else (item[0], item[1]) for item in items]
        flat = [t for a, b in pairs for t in ((a,) if b is None else (a, b))]
        pieces = iter(self._pieces(flat))
        out = []
        for _a, b in pairs:
            first = list(next(pieces).ids)
            second = list(next(pieces).ids) if b is not None else None
            out.append(self._assemble(first, second, max_length))
        return out

    def __repr__(self) -> str:
        return (
            f"WordPieceTokenizer({self.vocab_file!r}, vocab={len(self.vocab)}, do_lower_case={self.do_lower_case}, "
            f"strip_accents={self.strip_accents}, tokenize_chinese_chars={self.tokenize_chinese_chars})"
        )
