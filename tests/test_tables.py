"""The one reader of user tables: malformed rows are refused with the file and line named."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poolbert.errors import PoolbertError
from poolbert.tables import read_chunks, read_table

NAMES = st.lists(st.text("abcdefgh", min_size=1, max_size=6), min_size=1, max_size=4,
                 unique=True)
TSV_FIELD = st.text(st.characters(blacklist_characters="\t\r\n", blacklist_categories=("Cs",)),
                    min_size=1, max_size=12)
CSV_FIELD = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"),
                    min_size=1, max_size=12)


def test_a_row_longer_than_the_header_is_refused_not_shifted(tmp_path):
    # pandas takes the extra fields of a longer first row as an index: the sentence became "0"
    # and the label a word, and training went on
    path = tmp_path / "train.tsv"
    path.write_text("index\tsentence\tlabel\n0\tA cat\tsat down\there\t1\n1\tok\t0\n")
    with pytest.raises(PoolbertError) as err:
        read_table(path)
    assert str(err.value) == (f"{path}: cannot read: line 2: 5 fields where the header has 3 "
                              "(index, sentence, label)")


def test_a_short_row_is_refused_not_padded(tmp_path):
    path = tmp_path / "dev.csv"
    path.write_text("premise,hypothesis,label\n\"a, b\",c,0\nd,e\n")
    with pytest.raises(PoolbertError, match=r"dev.csv: cannot read: line 3: 2 fields where"):
        read_table(path)


def test_jsonl_errors_name_the_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "a", "label": 0}\n\n[1, 2]\n')
    with pytest.raises(PoolbertError, match=r"rows.jsonl: cannot read: line 3: expected a JSON "
                                            "object"):
        read_table(path)


def test_chunks_cover_the_file_in_order(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("text\n" + "".join(f"row {i}\n" for i in range(10)))
    chunks = list(read_chunks(path, 4))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert [t for c in chunks for t in c["text"]] == [f"row {i}" for i in range(10)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=NAMES, rows=st.lists(st.lists(TSV_FIELD, min_size=1, max_size=6), max_size=8))
def test_tsv_rows_are_read_exactly_or_the_first_bad_line_is_named(tmp_path, header, rows):
    path = tmp_path / "data.tsv"
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    bad = next((i for i, r in enumerate(rows) if len(r) != len(header)), None)
    if bad is None:
        frame = next(read_chunks(path, None))
        assert list(frame.columns) == header
        assert frame.values.tolist() == rows
    else:
        with pytest.raises(PoolbertError) as err:
            read_table(path)
        assert str(err.value).startswith(f"{path}: cannot read: line {bad + 2}: "
                                         f"{len(rows[bad])} fields where the header has "
                                         f"{len(header)}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=NAMES, data=st.data())
def test_csv_fields_with_commas_quotes_and_newlines_round_trip(tmp_path, header, data):
    rows = data.draw(st.lists(st.lists(CSV_FIELD, min_size=len(header), max_size=len(header)),
                              max_size=8))
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    path = tmp_path / "data.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    frame = next(read_chunks(path, None))
    assert list(frame.columns) == header
    assert frame.values.tolist() == rows
