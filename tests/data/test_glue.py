"""Tests of the GLUE readers, feature conversion, collator and the length-grouped sampler."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from paddle_binbert.data.glue import (
    GLUE_TASKS,
    GlueFormatError,
    check_glue_files,
    convert_examples_to_features,
    get_task_spec,
    glue_collator,
    glue_split_path,
    load_glue_features,
    normalize_task_name,
    read_glue_examples,
)
from paddle_binbert.data.sampler import LengthGroupedBatchSampler, evenly_spaced, feature_lengths

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GLUE = FIXTURES / "glue"


@pytest.fixture(scope="module")
def tokenizer():
    from paddlenlp.transformers import BertTokenizer

    return BertTokenizer(str(FIXTURES / "vocab.txt"), do_lower_case=True)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- task names and files


@pytest.mark.parametrize(
    "alias, name",
    [
        ("sst-2", "SST-2"),
        ("SST2", "SST-2"),
        ("sst_2", "SST-2"),
        ("Sst-2", "SST-2"),
        ("cola", "CoLA"),
        ("sts-b", "STS-B"),
        ("stsb", "STS-B"),
        ("MNLI", "MNLI"),
        ("mnli-mm", "MNLI"),
        ("qqp", "QQP"),
        ("qnli", "QNLI"),
        ("rte", "RTE"),
        ("wnli", "WNLI"),
        ("mrpc", "MRPC"),
    ],
)
def test_task_aliases(alias: str, name: str) -> None:
    assert normalize_task_name(alias) == name
    assert get_task_spec(alias).name == name


def test_unknown_task_lists_valid_names() -> None:
    with pytest.raises(ValueError) as info:
        normalize_task_name("sst-5")
    for name in GLUE_TASKS:
        assert name in str(info.value)


def test_registry() -> None:
    assert set(GLUE_TASKS) == {"CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"}
    assert GLUE_TASKS["STS-B"].is_regression and GLUE_TASKS["STS-B"].num_labels == 1
    assert GLUE_TASKS["MNLI"].num_labels == 3
    assert GLUE_TASKS["MNLI"].dev_splits == ("dev_matched", "dev_mismatched")
    assert not GLUE_TASKS["CoLA"].has_header
    assert all(spec.has_header for name, spec in GLUE_TASKS.items() if name != "CoLA")
    assert GLUE_TASKS["CoLA"].main_metric == "mcc" and GLUE_TASKS["STS-B"].main_metric == "corr"
    assert [name for name, spec in GLUE_TASKS.items() if spec.is_pair] == [
        "MRPC",
        "STS-B",
        "QQP",
        "MNLI",
        "QNLI",
        "RTE",
        "WNLI",
    ]


def test_missing_file_names_path_and_expected_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        read_glue_examples(tmp_path, "rte", "dev")
    assert str(tmp_path / "dev.tsv") in str(info.value) and "'dev.tsv'" in str(info.value)
    with pytest.raises(FileNotFoundError) as info:
        check_glue_files(tmp_path / "nope", "mnli")
    assert "nope" in str(info.value) and "dev_matched.tsv" in str(info.value)


def test_unknown_split() -> None:
    with pytest.raises(ValueError, match="valid splits"):
        glue_split_path(GLUE / "SST-2", "sst2", "test")
    assert glue_split_path("x", "mnli", "dev").endswith("dev_matched.tsv")
    assert glue_split_path("x", "mnli", "dev_mismatched").endswith("dev_mismatched.tsv")


# ---------------------------------------------------------------- reading the fixtures


@pytest.mark.parametrize("task", sorted(GLUE_TASKS))
def test_read_all_fixture_splits(task: str) -> None:
    spec = GLUE_TASKS[task]
    for split in ("train",) + spec.dev_splits:
        examples = read_glue_examples(GLUE / task, task.lower(), split)
        assert len(examples) == 12
        assert examples[0].guid == f"{split}-0"
        for ex in examples:
            assert ex.text_a and ex.text_a == ex.text_a.strip()
            assert (ex.text_b is not None) == spec.is_pair
            if spec.is_regression:
                assert isinstance(ex.label, float) and 0.0 <= ex.label <= 5.0
            else:
                assert isinstance(ex.label, int) and 0 <= ex.label < spec.num_labels
        if not spec.is_regression:
            assert len({ex.label for ex in examples}) >= 2


def test_cola_no_header_and_no_trailing_newline() -> None:
    raw = (GLUE / "CoLA" / "dev.tsv").read_bytes()
    assert not raw.endswith(b"\n")
    dev = read_glue_examples(GLUE / "CoLA", "CoLA", "dev")
    last_line = raw.decode().split("\n")[-1].split("\t")
    assert dev[-1].text_a == last_line[3] and dev[-1].label == int(last_line[1])
    first_line = raw.decode().split("\n")[0].split("\t")
    assert dev[0].text_a == first_line[3]  # the first row is data, not a header


def test_mrpc_bom() -> None:
    assert (GLUE / "MRPC" / "train.tsv").read_bytes().startswith(b"\xef\xbb\xbf")
    examples = read_glue_examples(GLUE / "MRPC", "MRPC", "train")
    assert examples[0].text_a.startswith("Amrozi accused his brother")
    assert examples[0].label == 1
    assert all("\ufeff" not in ex.text_a for ex in examples)


def test_sst2_trailing_spaces_stripped() -> None:
    raw_rows = (GLUE / "SST-2" / "train.tsv").read_text().splitlines()[1:]
    assert all(row.split("\t")[0].endswith(" ") for row in raw_rows)
    examples = read_glue_examples(GLUE / "SST-2", "sst-2", "train")
    assert examples[0].text_a == "hide new secretions from the parental units"


def test_stsb_float_scores() -> None:
    examples = read_glue_examples(GLUE / "STS-B", "sts-b", "train")
    assert [ex.label for ex in examples[:3]] == [5.0, 3.8, 3.8]
    assert any(ex.label != int(ex.label) for ex in examples)


@pytest.mark.parametrize("task", ["MRPC", "RTE", "STS-B"])
def test_unbalanced_quotes_kept_verbatim(task: str) -> None:
    examples = read_glue_examples(GLUE / task, task, "train")
    odd = [ex for ex in examples if (ex.text_a + (ex.text_b or "")).count('"') % 2 == 1]
    assert odd, "fixture should contain a row with an unbalanced quote"
    # quoting is disabled: a stray quote does not swallow the following rows
    assert len(examples) == 12


def test_mnli_matched_and_mismatched() -> None:
    matched = read_glue_examples(GLUE / "MNLI", "mnli", "dev_matched")
    mismatched = read_glue_examples(GLUE / "MNLI", "mnli", "dev_mismatched")
    plain = read_glue_examples(GLUE / "MNLI", "mnli", "dev")
    assert [e.text_a for e in plain] == [e.text_a for e in matched]
    assert [e.text_a for e in mismatched] == [e.text_a for e in matched][::-1]
    assert matched[1].label == GLUE_TASKS["MNLI"].labels.index("contradiction")


def test_train_aug(tmp_path: Path) -> None:
    shutil.copyfile(GLUE / "SST-2" / "train.tsv", tmp_path / "train_aug.tsv")
    examples = read_glue_examples(tmp_path, "sst2", "train_aug")
    assert len(examples) == 12 and examples[0].guid == "train_aug-0"


def test_blank_lines_and_crlf_tolerated(tmp_path: Path) -> None:
    _write(tmp_path / "train.tsv", b"sentence\tlabel\r\ngood movie \t1\r\n\r\nbad movie \t0\r\n\n")
    examples = read_glue_examples(tmp_path, "sst2", "train")
    assert [(e.text_a, e.label) for e in examples] == [("good movie", 1), ("bad movie", 0)]


# ---------------------------------------------------------------- malformed rows


def _error(tmp_path: Path, task: str, data: bytes, split: str = "train") -> GlueFormatError:
    path = _write(tmp_path / glue_split_path("", task, split), data)
    with pytest.raises(GlueFormatError) as info:
        read_glue_examples(tmp_path, task, split)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)
    return info.value


def test_wrong_column_count(tmp_path: Path) -> None:
    err = _error(tmp_path, "sst2", b"sentence\tlabel\ngood \t1\nbad \t0\textra\n")
    assert err.line == 3 and "line 3" in str(err) and "expected 2 tab-separated columns, got 3" in str(err)


def test_cola_wrong_column_count(tmp_path: Path) -> None:
    err = _error(tmp_path, "cola", b"gj04\t1\t\tFine.\ngj04\t1\tOnly three\n")
    assert err.line == 2 and "expected 4" in str(err)


def test_label_not_in_list(tmp_path: Path) -> None:
    err = _error(tmp_path, "rte", b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tneutral\n")
    assert err.line == 3 and err.field == "label"
    assert "'neutral'" in str(err) and "not_entailment" in str(err)


def test_non_float_score(tmp_path: Path) -> None:
    header = b"index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    err = _error(tmp_path, "sts-b", header + b"0\tg\tf\t2012\t0\tn\tn\tA.\tB.\tfive\n")
    assert err.line == 2 and err.field == "score" and "float" in str(err) and "'five'" in str(err)
    err = _error(tmp_path, "sts-b", header + b"0\tg\tf\t2012\t0\tn\tn\tA.\tB.\t5.5\n")
    assert "[0, 5]" in str(err)


def test_header_missing_column(tmp_path: Path) -> None:
    err = _error(tmp_path, "qnli", b"index\tquestion\ttext\tlabel\n0\tq\ts\tentailment\n")
    assert err.line == 1 and err.field == "sentence"


def test_invalid_utf8(tmp_path: Path) -> None:
    err = _error(tmp_path, "sst2", b"\xef\xbb\xbfsentence\tlabel\ngood\t1\nbad \xff\t0\n")
    assert err.line == 3 and "UTF-8" in str(err)


def test_skip_malformed(tmp_path: Path) -> None:
    _write(tmp_path / "train.tsv", b"sentence\tlabel\ngood\t1\nbad\t7\nok\t0\n")
    examples = read_glue_examples(tmp_path, "sst2", "train", skip_malformed=True)
    assert [e.text_a for e in examples] == ["good", "ok"]


# ---------------------------------------------------------------- features and collator


def test_features_single_sentence(tokenizer) -> None:
    examples = read_glue_examples(GLUE / "SST-2", "sst2", "train")
    features = convert_examples_to_features(examples, tokenizer, 8, "sst2")
    assert len(features) == 12
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    for feat, ex in zip(features, examples):
        assert set(feat) == {"input_ids", "token_type_ids", "labels"}
        assert 3 <= len(feat["input_ids"]) <= 8
        assert feat["input_ids"][0] == cls_id and feat["input_ids"][-1] == sep_id
        assert feat["token_type_ids"] == [0] * len(feat["input_ids"])
        assert isinstance(feat["labels"], int) and feat["labels"] == ex.label
    assert max(len(f["input_ids"]) for f in features) == 8  # truncation happened


def test_features_pair_and_regression(tokenizer) -> None:
    features = load_glue_features(GLUE / "STS-B", "stsb", "dev", tokenizer, 24, max_examples=5)
    assert len(features) == 5
    for feat in features:
        assert len(feat["input_ids"]) <= 24
        assert isinstance(feat["labels"], np.float32)
        types = feat["token_type_ids"]
        assert types[0] == 0 and types[-1] == 1 and sorted(types) == types
        assert feat["input_ids"].count(tokenizer.sep_token_id) == 2


def test_load_features_rejects_bad_max_examples(tokenizer) -> None:
    with pytest.raises(ValueError):
        load_glue_features(GLUE / "SST-2", "sst2", "dev", tokenizer, 16, max_examples=0)


def test_collator_pads_and_masks(tokenizer) -> None:
    features = load_glue_features(GLUE / "RTE", "rte", "dev", tokenizer, 32, max_examples=4)
    features[0] = dict(features[0], input_ids=features[0]["input_ids"][:5], token_type_ids=[0] * 5)
    batch = glue_collator(tokenizer)(features)
    width = max(len(f["input_ids"]) for f in features)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    ids = batch["input_ids"].numpy()
    assert ids.shape == (4, width) and str(batch["input_ids"].dtype).endswith("int64")
    assert (ids[0, 5:] == tokenizer.pad_token_id).all()
    assert (batch["token_type_ids"].numpy()[0, 5:] == 0).all()
    mask = batch["attention_mask"].numpy()
    assert mask[0].tolist() == [1] * 5 + [0] * (width - 5)
    assert str(batch["labels"].dtype).endswith("int64")
    reg = glue_collator(tokenizer)(load_glue_features(GLUE / "STS-B", "stsb", "dev", tokenizer, 32, max_examples=3))
    assert str(reg["labels"].dtype).endswith("float32")
    assert "attention_mask" not in glue_collator(tokenizer, return_attention_mask=False)(features)


# ---------------------------------------------------------------- length-grouped sampler


def _dataset(n: int, seed: int = 0) -> list:
    rng = np.random.RandomState(seed)
    return [{"input_ids": [1] * int(k)} for k in rng.randint(3, 64, size=n)]


def test_sampler_covers_everything_once_and_is_deterministic() -> None:
    data = _dataset(1000)
    a = LengthGroupedBatchSampler(data, batch_size=16, num_replicas=1, rank=0, seed=7, mega_batch_mult=4)
    b = LengthGroupedBatchSampler(data, batch_size=16, num_replicas=1, rank=0, seed=7, mega_batch_mult=4)
    batches_a, batches_b = list(a), list(b)
    assert batches_a == batches_b
    assert len(batches_a) == len(a) == 63
    flat = sorted(i for batch in batches_a for i in batch)
    assert flat == list(range(1000))
    assert list(a) != batches_a  # next epoch, new order
    a.set_epoch(0)
    assert list(a) == batches_a
    c = LengthGroupedBatchSampler(data, batch_size=16, num_replicas=1, rank=0, seed=8, mega_batch_mult=4)
    assert list(c) != batches_a


def test_sampler_groups_lengths() -> None:
    data = _dataset(2000)
    lengths = np.array(feature_lengths(data))
    sampler = LengthGroupedBatchSampler(data, batch_size=32, num_replicas=1, rank=0, seed=0)
    spread = np.mean([np.ptp(lengths[b]) for b in sampler])
    random_spread = np.mean([np.ptp(lengths[b]) for b in np.array_split(np.random.permutation(2000), 63)])
    assert spread < random_spread / 4
    # batch order is shuffled, not sorted by length
    maxima = [lengths[b].max() for b in sampler]
    assert maxima != sorted(maxima, reverse=True)


@pytest.mark.parametrize("n, bs, ranks, drop_last", [(103, 8, 2, False), (103, 8, 2, True), (50, 4, 3, False)])
def test_sampler_distributed_shards(n: int, bs: int, ranks: int, drop_last: bool) -> None:
    data = _dataset(n, seed=1)
    samplers = [
        LengthGroupedBatchSampler(data, batch_size=bs, num_replicas=ranks, rank=r, seed=3, drop_last=drop_last)
        for r in range(ranks)
    ]
    per_rank = [list(s) for s in samplers]
    assert len({len(batches) for batches in per_rank}) == 1
    assert all(len(batches) == len(s) for batches, s in zip(per_rank, samplers))
    for step in zip(*per_rank):  # all ranks take a step with equally sized batches
        assert len({len(b) for b in step}) == 1
    taken = [i for batches in per_rank for b in batches for i in b]
    if drop_last:
        assert all(len(b) == bs for batches in per_rank for b in batches)
        assert len(taken) == ranks * (samplers[0].total_size // ranks // bs) * bs
    else:
        # every example once, plus the few repeated to make the total a multiple of the rank count
        assert set(taken) == set(range(n))
        assert len(taken) == samplers[0].total_size == ranks * -(-n // ranks)


def test_sampler_len_matches_iteration() -> None:
    for n in (1, 5, 31, 32, 33, 100):
        for bs in (1, 4, 32):
            for drop_last in (False, True):
                s = LengthGroupedBatchSampler(_dataset(n), batch_size=bs, num_replicas=1, rank=0, drop_last=drop_last)
                assert len(list(s)) == len(s)


def test_sampler_without_shuffle_keeps_order() -> None:
    s = LengthGroupedBatchSampler(_dataset(10), batch_size=4, num_replicas=1, rank=0, shuffle=False)
    assert list(s) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_sampler_needs_lengths() -> None:
    with pytest.raises(ValueError, match="lengths"):
        LengthGroupedBatchSampler([1, 2, 3], batch_size=2, num_replicas=1, rank=0)
    s = LengthGroupedBatchSampler([1, 2, 3], batch_size=2, lengths=[3, 1, 2], num_replicas=1, rank=0)
    assert sorted(i for b in s for i in b) == [0, 1, 2]


def test_fixture_files_exist() -> None:
    for task, spec in GLUE_TASKS.items():
        assert os.path.isfile(GLUE / task / "train.tsv")
        for split in spec.dev_splits:
            assert os.path.isfile(glue_split_path(GLUE / task, task, split))


def test_evenly_spaced_subset() -> None:
    items = list(range(10))
    assert evenly_spaced(items, 3) == [0, 3, 6]
    assert evenly_spaced(items, 10) == items == evenly_spaced(items, 25) == evenly_spaced(items, None)
    picked = evenly_spaced(list(range(1000)), 300)
    assert len(set(picked)) == 300 and picked == sorted(picked) and picked[-1] >= 990
    with pytest.raises(ValueError, match="positive"):
        evenly_spaced(items, 0)
