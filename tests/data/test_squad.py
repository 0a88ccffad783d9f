"""Tests of the SQuAD v1.1 pipeline: reader, windowed features, post-processing, evaluation.

``tests/fixtures/squad/vocab.txt`` holds the special tokens plus exactly the bert-base-uncased
word pieces that the fixture texts and the strings below tokenize to (163 entries, in the order of
the real vocab). WordPiece's greedy longest match then splits these texts as the full vocab does.
"""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

from paddle_binbert.data.squad import (
    SquadExample,
    SquadFeature,
    SquadFormatError,
    collate_features,
    exact_match_score,
    f1_score,
    load_squad_json,
    normalize_answer,
    parse_squad,
    postprocess_predictions,
    prepare_eval_features,
    prepare_train_features,
    read_squad_examples,
    squad_evaluate,
    tokenize_with_offsets,
    write_predictions,
)
from paddle_binbert.data.squad.__main__ import main as cli_main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "squad"
TINY = FIXTURES / "tiny-v1.1.json"
MINI_DEV = Path(os.environ.get("SQUAD_DIR", "/work/shared/data/squad")) / "mini_dev-v1.1.json"

# Small windows so that the long fixture context needs many overlapping windows.
SMALL = {"max_seq_length": 40, "doc_stride": 8, "max_query_length": 12}


@pytest.fixture(scope="module")
def tokenizer():
    """A slow PaddleNLP BertTokenizer on the small fixture vocab (no download)."""
    from paddlenlp.transformers import BertTokenizer

    return BertTokenizer(str(FIXTURES / "vocab.txt"))


@pytest.fixture(scope="module")
def examples() -> List[SquadExample]:
    """The hand-made fixture examples."""
    return read_squad_examples(TINY)


# ------------------------------------------------------------------------------------------
# Reader
# ------------------------------------------------------------------------------------------


def test_reader_parses_fixture(examples: List[SquadExample]) -> None:
    assert len(examples) == 11
    first = examples[0]
    assert first.id == "dan-1" and first.title == "Danube"
    assert first.answers == [
        {"text": "the Volga", "answer_start": first.context.index("the Volga")},
        {"text": "Volga", "answer_start": first.context.index("Volga")},
    ]
    tea = next(e for e in examples if e.id == "tea-1")
    assert tea.context.startswith("  Tea"), "contexts must be kept unchanged (no strip)"
    assert [e.id for e in examples if e.title == "Short"] == ["ada-1", "ada-2", "tea-1", "tea-2"]


def test_reader_missing_question_names_key_and_id() -> None:
    with pytest.raises(SquadFormatError) as info:
        read_squad_examples(FIXTURES / "missing_question.json")
    message = str(info.value)
    assert "'question'" in message and "no-question-1" in message and "missing key" in message


def test_reader_missing_context_names_paragraph() -> None:
    with pytest.raises(SquadFormatError, match=r"article 0 \('NoContext'\), paragraph 1: missing key 'context'"):
        read_squad_examples(FIXTURES / "missing_context.json")


def test_reader_missing_id_names_question_position() -> None:
    data = {"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"question": "q", "answers": []}]}]}]}
    with pytest.raises(SquadFormatError, match=r"paragraph 0, question 0: missing key 'id'"):
        parse_squad(data)


def test_reader_wrong_answer_start_names_id_offset_and_texts() -> None:
    with pytest.raises(SquadFormatError) as info:
        read_squad_examples(FIXTURES / "bad_answer_start.json")
    message = str(info.value)
    for part in ("bad-start-1", "answer_start 50", "expected '1843'", "found 'n 18'"):
        assert part in message
    # The check can be switched off, e.g. to inspect such a file.
    assert read_squad_examples(FIXTURES / "bad_answer_start.json", check_answers=False)[0].id == "bad-start-1"


def test_reader_broken_json_names_file_line_and_column() -> None:
    with pytest.raises(SquadFormatError) as info:
        read_squad_examples(FIXTURES / "broken.json")
    message = str(info.value)
    assert "broken.json" in message and "line 7, column 127" in message
    assert isinstance(info.value, ValueError)


def test_reader_rejects_duplicate_ids_and_bad_types() -> None:
    qa = {"id": "x", "question": "q", "answers": [{"text": "c", "answer_start": 0}]}
    data = {"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [qa, dict(qa)]}]}]}
    with pytest.raises(SquadFormatError, match="'x'.*duplicate"):
        parse_squad(data)
    bad_qa = dict(qa, answers=[{"text": "c", "answer_start": "0"}])
    bad = {"data": [{"paragraphs": [{"context": "c", "qas": [bad_qa]}]}]}
    with pytest.raises(SquadFormatError, match="'answer_start' should be of type int"):
        parse_squad(bad)
    with pytest.raises(SquadFormatError, match="missing key 'data'"):
        parse_squad({"version": "1.1"})


# ------------------------------------------------------------------------------------------
# Tokenization and features
# ------------------------------------------------------------------------------------------


def test_tokenize_with_offsets_matches_tokenizer(tokenizer) -> None:
    text = "  Zürich's café ☃ costs $5.50 (approx.) in Grünwald-Straße."
    ids, offsets = tokenize_with_offsets(tokenizer, text)
    tokens = tokenizer.tokenize(text)
    assert ids == tokenizer.convert_tokens_to_ids(tokens)
    pieces = [text[a:b] for a, b in offsets]
    assert pieces[:6] == ["Zürich", "'", "s", "café", "☃", "costs"]
    assert tokens[4] == "[UNK]"
    assert "".join(pieces[-7:-1]) == "Grünwald-Straße" and pieces[-1] == "."
    for token, piece in zip(tokens, pieces):
        if token != "[UNK]":
            plain = "".join(c for c in unicodedata.normalize("NFD", piece.lower()) if unicodedata.category(c) != "Mn")
            assert plain == (token[2:] if token.startswith("##") else token)


def test_tokenize_with_offsets_uses_fast_tokenizer_offsets() -> None:
    class FakeFast:
        is_fast = True

        def __call__(self, text: str, add_special_tokens: bool, return_offsets_mapping: bool) -> Dict:
            assert not add_special_tokens and return_offsets_mapping
            return {"input_ids": [7, 8], "offset_mapping": [(0, 2), (3, 5)]}

    assert tokenize_with_offsets(FakeFast(), "ab cd") == ([7, 8], [(0, 2), (3, 5)])


def _answer_token_range(feature: SquadFeature, start_char: int, end_char: int) -> Tuple[int, int]:
    """Positions of the first/last window tokens overlapping the characters, or (-1, -1)."""
    spans = feature.offset_mapping
    inside = [i for i, span in enumerate(spans) if span is not None and span[1] > start_char and span[0] < end_char]
    return (inside[0], inside[-1]) if inside else (-1, -1)


@pytest.mark.parametrize("doc_stride", [3, 8, 20, 500])
def test_train_windows_cover_answers(tokenizer, examples: List[SquadExample], doc_stride: int) -> None:
    settings = dict(SMALL, doc_stride=doc_stride)
    features = prepare_train_features(examples, tokenizer, **settings)
    by_example: Dict[str, List[SquadFeature]] = {}
    for feature in features:
        by_example.setdefault(feature.example_id, []).append(feature)
    assert list(by_example) == [e.id for e in examples]

    for index, example in enumerate(examples):
        windows = by_example[example.id]
        ctx_ids, ctx_offsets = tokenize_with_offsets(tokenizer, example.context)
        q_len = min(len(tokenize_with_offsets(tokenizer, example.question)[0]), settings["max_query_length"])
        max_ctx = settings["max_seq_length"] - q_len - 3
        step = min(doc_stride, max_ctx)
        # Window layout: consecutive starts one step apart, the last window reaches the end.
        assert [w.window_index for w in windows] == list(range(len(windows)))
        assert [w.context_start for w in windows] == [k * step for k in range(len(windows))]
        last = windows[-1]
        assert last.context_start + sum(s is not None for s in last.offset_mapping) == len(ctx_ids)
        if example.title == "Danube":
            assert len(windows) > 1

        answer = example.answers[0]
        start_char = answer["answer_start"]
        end_char = start_char + len(answer["text"])
        containing = 0
        for w in windows:
            assert w.example_index == index
            n = len(w.input_ids)
            assert n <= settings["max_seq_length"]
            assert len(w.token_type_ids) == n and len(w.offset_mapping) == n
            assert w.input_ids[0] == tokenizer.cls_token_id and w.input_ids[-1] == tokenizer.sep_token_id
            assert w.input_ids[q_len + 1] == tokenizer.sep_token_id
            assert w.offset_mapping[: q_len + 2] == [None] * (q_len + 2) and w.offset_mapping[-1] is None
            assert w.token_type_ids == [0] * (q_len + 2) + [1] * (n - q_len - 2)
            first, last_tok = _answer_token_range(w, start_char, end_char)
            whole = (
                first != -1 and w.offset_mapping[first][0] <= start_char and w.offset_mapping[last_tok][1] >= end_char
            )
            if whole:
                containing += 1
                assert (w.start_position, w.end_position) == (first, last_tok)
                s, e = w.offset_mapping[w.start_position], w.offset_mapping[w.end_position]
                assert example.context[s[0] : e[1]] == answer["text"]
            else:
                assert (w.start_position, w.end_position) == (0, 0)
        # Windows of length L starting every S tokens hold every span of at most L - S + 1 tokens.
        first_tok = next(i for i, (_, b) in enumerate(ctx_offsets) if b > start_char)
        n_answer = sum(1 for a, b in ctx_offsets[first_tok:] if a < end_char)
        if n_answer <= max_ctx - step + 1:
            assert containing >= 1, f"{example.id}: no window holds the whole answer"
        else:
            assert doc_stride > 8, "the small strides must make every fixture answer fit a window"


def test_question_is_truncated_and_eval_features_have_no_targets(tokenizer, examples: List[SquadExample]) -> None:
    train = prepare_train_features(examples, tokenizer, max_seq_length=40, doc_stride=8, max_query_length=3)
    evals = prepare_eval_features(examples, tokenizer, max_seq_length=40, doc_stride=8, max_query_length=3)
    assert [f.input_ids for f in train] == [f.input_ids for f in evals]
    assert all(f.start_position is None and f.end_position is None for f in evals)
    assert all(f.input_ids[4] == tokenizer.sep_token_id for f in evals)  # [CLS] q1 q2 q3 [SEP]
    with pytest.raises(ValueError, match="no room"):
        prepare_eval_features(examples, tokenizer, max_seq_length=10, max_query_length=8)


def test_default_settings_one_window_per_short_example(tokenizer, examples: List[SquadExample]) -> None:
    features = prepare_train_features(examples, tokenizer)
    assert len(features) == len(examples)
    assert all(f.start_position > 0 for f in features)


def test_collate_features_pads(tokenizer, examples: List[SquadExample]) -> None:
    features = prepare_train_features(examples[:3], tokenizer, **SMALL)
    batch = collate_features(features, pad_token_id=0, max_length=SMALL["max_seq_length"])
    assert batch["input_ids"].shape == (len(features), SMALL["max_seq_length"])
    assert batch["attention_mask"].sum() == sum(len(f.input_ids) for f in features)
    assert batch["start_positions"].tolist() == [f.start_position for f in features]
    assert "start_positions" not in collate_features(prepare_eval_features(examples[:1], tokenizer))


# ------------------------------------------------------------------------------------------
# Post-processing
# ------------------------------------------------------------------------------------------


def _perfect_logits(train_features: List[SquadFeature], length: int) -> Tuple[np.ndarray, np.ndarray]:
    """Logits peaked at the gold start/end in windows that hold the answer, flat elsewhere."""
    starts = np.zeros((len(train_features), length), dtype="float32")
    ends = np.zeros((len(train_features), length), dtype="float32")
    for row, feature in enumerate(train_features):
        # A strong [CLS] peak must be ignored: [CLS] is not a context token.
        starts[row, 0] = ends[row, 0] = 50.0
        if feature.start_position:
            starts[row, feature.start_position] = 10.0
            ends[row, feature.end_position] = 10.0
    return starts, ends


@pytest.mark.parametrize("settings", [SMALL, {}])
def test_postprocess_recovers_gold_from_perfect_logits(tokenizer, examples: List[SquadExample], settings) -> None:
    train = prepare_train_features(examples, tokenizer, **settings)
    features = prepare_eval_features(examples, tokenizer, **settings)
    length = settings.get("max_seq_length", 384)
    starts, ends = _perfect_logits(train, length)
    predictions, nbest = postprocess_predictions(examples, features, starts, ends, n_best_size=5)
    assert predictions == {e.id: e.answers[0]["text"] for e in examples}
    for example in examples:
        entries = nbest[example.id]
        assert 1 <= len(entries) <= 5
        assert entries[0]["text"] == predictions[example.id]
        assert set(entries[0]) == {"text", "probability", "start_logit", "end_logit"}
        assert len({e["text"] for e in entries}) == len(entries)
        probs = [e["probability"] for e in entries]
        assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1.0) < 1e-9
        assert all(isinstance(p, float) for p in probs)
    # Rows given as plain lists, unpadded, work too.
    list_starts = [row[: len(f.input_ids)].tolist() for row, f in zip(starts, features)]
    list_ends = [row[: len(f.input_ids)].tolist() for row, f in zip(ends, features)]
    assert postprocess_predictions(examples, features, list_starts, list_ends)[0] == predictions


def test_postprocess_respects_order_and_length_limits(tokenizer) -> None:
    context = "one two three four five six seven eight"
    example = SquadExample("q", "which?", context, [{"text": "two", "answer_start": 4}])
    (feature,) = prepare_eval_features([example], tokenizer)
    first_ctx = feature.offset_mapping.index((0, 3))  # "one"
    starts = np.full(len(feature.input_ids), -5.0)
    ends = np.full(len(feature.input_ids), -5.0)
    starts[first_ctx + 6] = 9.0  # best start "seven" ...
    ends[first_ctx + 1] = 9.0  # ... after the best end "two": not a valid pair
    starts[first_ctx + 1] = 1.0  # "two": two->two scores 10, seven->eight 11
    ends[first_ctx + 7] = 2.0  # "eight"
    starts[1] = ends[1] = 100.0  # a question token: never an answer
    preds, nbest = postprocess_predictions([example], [feature], [starts], [ends])
    assert preds["q"] == "seven eight"
    preds, _ = postprocess_predictions([example], [feature], [starts], [ends], max_answer_length=1)
    assert preds["q"] == "two"
    texts = [e["text"] for e in nbest["q"]]
    assert "two" in texts and "seven eight" in texts
    with pytest.raises(ValueError):
        postprocess_predictions([example], [feature], [], [])


def test_postprocess_example_without_feature_gets_empty_answer() -> None:
    example = SquadExample("lonely", "q?", "ctx", [])
    preds, nbest = postprocess_predictions([example], [], [], [])
    assert preds == {"lonely": ""} and nbest["lonely"][0]["text"] == ""


def test_write_predictions_is_atomic_and_official_format(tmp_path: Path) -> None:
    predictions = {"a": "Zürich", "b": ""}
    nbest = {"a": [{"text": "Zürich", "probability": 1.0, "start_logit": 1.0, "end_logit": 2.0}], "b": []}
    out = tmp_path / "run" / "eval"
    pred_path, nbest_path = write_predictions(predictions, nbest, out)
    assert pred_path == out / "predictions.json" and nbest_path == out / "nbest_predictions.json"
    assert json.loads(pred_path.read_text(encoding="utf-8")) == predictions
    assert json.loads(nbest_path.read_text(encoding="utf-8")) == nbest
    write_predictions({"a": "x"}, {}, out)  # overwrite in place
    assert json.loads(pred_path.read_text(encoding="utf-8")) == {"a": "x"}
    assert sorted(p.name for p in out.iterdir()) == ["nbest_predictions.json", "predictions.json"]


# ------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------


def _dataset(golds: Dict[str, List[str]]) -> Dict:
    """A minimal SQuAD object with one question per entry (answer_start is not used)."""
    qas = [
        {"id": qid, "question": "?", "answers": [{"text": t, "answer_start": 0} for t in texts]}
        for qid, texts in golds.items()
    ]
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "", "qas": qas}]}]}


def test_normalize_answer() -> None:
    assert normalize_answer("  The Quick, brown-fox!  ") == "quick brownfox"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("theatre anthem") == "theatre anthem"  # articles only as whole words
    assert normalize_answer("A") == ""


def test_squad_evaluate_hand_made_cases() -> None:
    dataset = _dataset(
        {
            "q1": ["The Eiffel Tower"],
            "q2": ["Paris, France", "Paris"],
            "q3": ["an apple a day"],
            "q4": ["forty-two"],
        }
    )
    predictions = {"q1": "eiffel tower!", "q2": "in Paris", "q3": "apple day keeps", "extra": "ignored"}
    # q1: exact after normalization. q2: vs "paris france" P=R=1/2 -> F1 1/2; vs "paris" P=1/2, R=1 -> 2/3.
    # q3: gold "apple day", prediction "apple day keeps": P=2/3, R=1 -> F1 4/5. q4: missing -> 0.
    assert f1_score("in Paris", "Paris") == pytest.approx(2 / 3)
    assert f1_score("apple day keeps", "an apple a day") == pytest.approx(0.8)
    assert exact_match_score("The  Eiffel-Tower", "eiffel tower") == 0.0  # hyphen is removed, not spaced
    with pytest.warns(UserWarning, match="1 of 4 questions have no prediction.*q4"):
        result = squad_evaluate(dataset, predictions)
    assert set(result) == {"exact_match", "f1"}
    assert result["exact_match"] == pytest.approx(25.0)
    assert result["f1"] == pytest.approx(100.0 * (1 + 2 / 3 + 0.8 + 0) / 4)


def test_squad_evaluate_repeated_tokens_and_empty() -> None:
    # Tokens are counted with multiplicity: "new new york" vs "new york": shared 2, P=2/3, R=1.
    assert f1_score("new new york", "New York") == pytest.approx(0.8)
    # v1.1: nothing shared -> F1 0, even when both normalize to "" (EM is still 1).
    assert f1_score("", "the") == 0.0 and exact_match_score("", "the") == 1.0
    assert squad_evaluate(_dataset({}), {}) == {"exact_match": 0.0, "f1": 0.0}


def test_cli_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pred_file = tmp_path / "predictions.json"
    pred_file.write_text(json.dumps({"ada-1": "Lovelace", "ada-2": "in 1843"}), encoding="utf-8")
    with pytest.warns(UserWarning, match="no prediction"):
        assert cli_main([str(TINY), str(pred_file)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["exact_match"] == pytest.approx(100.0 / 11)
    assert result["f1"] == pytest.approx(100.0 * (1 + 2 / 3) / 11)
    assert cli_main([str(FIXTURES / "broken.json"), str(pred_file)]) == 1
    assert "line 7, column 127" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# Real data
# ------------------------------------------------------------------------------------------


@pytest.mark.skipif(not MINI_DEV.is_file(), reason="shared SQuAD mini_dev file not available")
def test_real_mini_dev_parses_and_first_gold_scores_100() -> None:
    examples = read_squad_examples(MINI_DEV)
    assert len(examples) == 1731
    assert all(e.answers for e in examples)
    dataset = load_squad_json(MINI_DEV)
    result = squad_evaluate(dataset, {e.id: e.answers[0]["text"] for e in examples})
    assert result == {"exact_match": pytest.approx(100.0), "f1": pytest.approx(100.0)}
