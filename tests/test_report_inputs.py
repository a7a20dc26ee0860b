"""The batch report's inputs: text files, JSONL and CSV, bad items, shards and limits (report/inputs.py)."""

from __future__ import annotations

import pytest

from attnviz.errors import BadInput
from attnviz.report.inputs import Shard, read_items


def test_text_file_blank_lines_are_bad_items(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("one\n\n  \ntwo\n\n", encoding="utf-8")
    items = read_items(src)
    assert [(i.id, i.text, i.error) for i in items] == [
        ("1", "one", None), ("2", "", "empty text"), ("3", "  ", "empty text"), ("4", "two", None)]


def test_jsonl_and_csv_fields(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": "x", "text": "hi", "label": "positive", "reference": "r"}\n'
                                      "not json\n" '{"text": "yo", "target": 1}\n', encoding="utf-8")
    items = read_items(tmp_path / "a.jsonl")
    assert (items[0].id, items[0].target, items[0].reference) == ("x", "positive", "r")
    assert items[1].error.startswith("line 2 is not a JSON object")
    assert (items[2].id, items[2].target) == ("3", "1")
    (tmp_path / "b.csv").write_text("id,text,label\na,hello,neg\na,again,pos\n", encoding="utf-8")
    ids = [i.id for i in read_items(tmp_path / "b.csv")]
    assert ids == ["a", "a~2"]  # repeated ids never share a folder
    (tmp_path / "c.csv").write_text("sentence\nhello\n", encoding="utf-8")
    with pytest.raises(BadInput, match="no `text` column"):
        read_items(tmp_path / "c.csv")


def test_shards_partition_the_corpus_and_limit_caps(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("".join(f"line {i}\n" for i in range(10)), encoding="utf-8")
    shards = [[i.id for i in read_items(src, shard=Shard.parse(f"{k}/3"))] for k in (1, 2, 3)]
    assert sorted(sum(shards, []), key=int) == [str(i) for i in range(1, 11)]
    assert not set(shards[0]) & set(shards[1])
    assert len(read_items(src, limit=4)) == 4
    for bad in ("0/3", "4/3", "x", "1/0"):
        with pytest.raises(BadInput):
            Shard.parse(bad)
