"""The runtime's WordPiece tokenizer (``tokenizers``) against PaddleNLP's BertTokenizer on the same
folder: ids of every SST-2 dev sentence, ids and character offsets of every SQuAD v1.1 dev question
and context, pair encodings with longest-first truncation, and awkward Unicode."""

import csv
import json
import os
from pathlib import Path

import pytest
from paddlenlp.transformers import BertTokenizer

from paddle_binbert.checkpoints import minilm_source_dir
from paddle_binbert.data.squad import tokenize_with_offsets
from paddle_binbert.runtime import WordPieceTokenizer

ROOT = Path(__file__).resolve().parents[2]


def _data_file(env: str, *parts: str) -> Path:
    """``$env/<last part>``, else the shared data folder beside the repository or at /work/shared."""
    candidates = [Path(os.environ[env]) / parts[-1]] if os.environ.get(env) else []
    candidates += [ROOT.parent / "shared" / "data" / Path(*parts), Path("/work/shared/data") / Path(*parts)]
    return next((p for p in candidates if p.is_file()), candidates[-1])


SST2_DEV = _data_file("GLUE_SST2_DIR", "glue", "SST-2", "dev.tsv")
SQUAD_DEV = _data_file("SQUAD_DIR", "squad", "dev-v1.1.json")

AWKWARD = [
    "ΟΔΟΣ. Σίσυφος",  # final capital sigma: PaddleNLP lowers per character
    "İstanbul Straße ÉCOLE naïve nai\u0308ve",
    "a\u2028b\u2029c\u0085d\x0be\x00f\ufffdg",
    "5€ a©b µm ² º 〇 Ø ŋ Ʊ ™ ← ☃ 😀",  # PaddleNLP splits Unicode symbols too
    "中文字符 和 日本語 のテキスト 한국어 \U0002b820",
    "[CLS] hello [SEP] [cls] [MASK]x[UNK]",
    "x" * 150 + " ok",
    "soft\u00adhyphen zero\u200bwidth \t tabs\nnewlines\r\n  ",
    "",
    "   ",
    "ǅungla Ǆ ǆ ﬁne ﬀ 𝐀𝐁𝐂 ß ẞ ﬆ ǰ ΐ ﾊﾝｶｸ full－width　space",
    'don\'t "quote" «guillemets» — dash … ellipsis',
]


@pytest.fixture(scope="module")
def tokenizers():
    """(PaddleNLP BertTokenizer, runtime WordPieceTokenizer) of the bundled uncased MiniLM vocabulary."""
    folder = minilm_source_dir()
    return BertTokenizer.from_pretrained(str(folder)), WordPieceTokenizer.from_pretrained(folder)


def _paddle_ids(tokenizer, text):
    return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))


@pytest.mark.skipif(not SST2_DEV.is_file(), reason="shared SST-2 dev.tsv not available")
def test_every_sst2_dev_sentence(tokenizers):
    ref_tok, tok = tokenizers
    with open(SST2_DEV, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    sentences = [row[0] for row in rows]
    assert len(sentences) == 872
    for max_length in (128, 16):
        got = tok.encode_batch(sentences, max_length=max_length)
        for sentence, enc in zip(sentences, got):
            ref = ref_tok(sentence, max_length=max_length, truncation=True)
            assert enc["input_ids"] == ref["input_ids"], sentence
            assert enc["token_type_ids"] == ref["token_type_ids"], sentence


@pytest.mark.skipif(not SQUAD_DEV.is_file(), reason="shared SQuAD dev-v1.1.json not available")
def test_every_squad_dev_question_and_context(tokenizers):
    """Every question and every context (ids and offsets, the SQuAD feature path); question +
    context pairs with truncation on every 10th question."""
    ref_tok, tok = tokenizers
    data = json.loads(SQUAD_DEV.read_text(encoding="utf-8"))
    contexts, pairs = [], []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            contexts.append(paragraph["context"])
            pairs += [(qa["question"], paragraph["context"]) for qa in paragraph["qas"]]
    assert len(contexts) == 2067 and len(pairs) == 10570
    for question, _ in pairs:
        assert tok.encode(question, add_special_tokens=False)["input_ids"] == _paddle_ids(ref_tok, question), question
    for context in contexts:
        assert tokenize_with_offsets(tok, context) == tokenize_with_offsets(ref_tok, context), context[:60]
    some = pairs[::10]
    for max_length in (384, 64):
        encoded = tok.encode_batch(some, max_length=max_length)
        assert len(encoded) == len(some) == 1057
        for (question, context), enc in zip(some, encoded):
            ref = ref_tok(question, text_pair=context, max_length=max_length, truncation=True)
            assert enc == {"input_ids": ref["input_ids"], "token_type_ids": ref["token_type_ids"]}, question


def test_awkward_unicode_and_special_tokens(tokenizers):
    ref_tok, tok = tokenizers
    for text in AWKWARD:
        assert tok.encode(text, add_special_tokens=False)["input_ids"] == _paddle_ids(ref_tok, text), repr(text)
        assert tok.tokenize(text) == ref_tok.tokenize(text), repr(text)
        ids, spans = tokenize_with_offsets(tok, text)
        assert len(ids) == len(spans)
        assert all(0 <= a < b <= len(text) for a, b in spans), repr(text)
    for a, b, max_length in [
        ("a b c d e f", "g h i", 8),
        ("a b", "c d e f g h i j", 8),
        ("a b c", "d e f", 7),
        ("x " * 50, "y " * 50, 20),
        ("a", "b", 4),
        ("a b c d e", None, 4),
    ]:
        ref = ref_tok(a, text_pair=b, max_length=max_length, truncation=True)
        got = tok(a, text_pair=b, max_length=max_length, truncation=True)
        assert got == {"input_ids": ref["input_ids"], "token_type_ids": ref["token_type_ids"]}


def test_tokenizer_config_is_followed(tmp_path):
    """do_lower_case / strip_accents / tokenize_chinese_chars as saved by PaddleNLP."""
    vocab = minilm_source_dir() / "vocab.txt"
    text = "Héllo WORLD 中文 naïve"
    for kwargs in (
        dict(do_lower_case=False),
        dict(do_lower_case=True, strip_accents=False),
        dict(do_lower_case=False, strip_accents=True),
        dict(tokenize_chinese_chars=False),
    ):
        folder = tmp_path / "_".join(f"{k}{v}" for k, v in kwargs.items())
        BertTokenizer(str(vocab), **kwargs).save_pretrained(str(folder))
        ref = BertTokenizer.from_pretrained(str(folder))
        tok = WordPieceTokenizer.from_pretrained(folder)
        assert tok.encode(text, add_special_tokens=False)["input_ids"] == _paddle_ids(ref, text), kwargs
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        WordPieceTokenizer.from_pretrained(tmp_path / "nothing")
