import json
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets.packaged_modules.parquet import parquet as parquet_module

from grokpath import hfdata
from grokpath.tokenizer import train_word_tokenizer

KW = "Organic Chemistry"


def _rows(n: int = 600) -> list[dict]:
    """Row i: every 3rd mentions the keyword, every 5th is long (30 words), a few are empty."""
    rows = []
    for i in range(n):
        words = ["w"] * (30 if i % 5 == 0 else 4)
        text = f"doc{i} " + (f"on {KW} " if i % 3 == 0 else "on organic chemistry ") + " ".join(words)
        if i % 50 == 7:
            text = None if i % 100 == 7 else "   "
        rows.append({"text": text, "meta": i})
    return rows


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """JSONL: datasets' Parquet streams sleep 5 s on close, JSON streams do not."""
    path = tmp_path_factory.mktemp("json") / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    return str(path)


@pytest.fixture(scope="module")
def tok():
    return train_word_tokenizer([" ".join([f"doc{i}" for i in range(600)] + ["on", "w", *KW.split()])])


def _stream(data_file, **kw):
    args = {"n": 20, "seed": 0, "data_files": {"train": data_file}, "shuffle_buffer": 64} | kw
    return hfdata.stream_texts("json", **args)


def test_same_seed_same_texts_other_seed_other_texts(data_file):
    a, b = _stream(data_file), _stream(data_file)
    assert a.texts == b.texts
    assert len(a.texts) == 20
    assert len(set(a.texts)) == 20
    assert _stream(data_file, seed=1).texts != a.texts
    # Shuffled, not the file's order.
    assert a.texts != [r["text"] for r in _rows() if r["text"] and r["text"].strip()][:20]
    # n only decides where the seeded stream is cut: a smaller n is a prefix.
    assert _stream(data_file, n=7).texts == a.texts[:7]
    assert a.scanned == 20 + a.empty  # no other filter here


def test_keyword_filter_is_case_sensitive(data_file):
    out = _stream(data_file, keyword=KW)
    assert all(KW in t for t in out.texts)
    assert out.no_keyword > 0
    assert out.scanned == len(out.texts) + out.empty + out.no_keyword + out.too_long
    lower = _stream(data_file, keyword="organic chemistry")
    assert all(KW not in t and "organic chemistry" in t for t in lower.texts)


def test_max_tokens_drops_and_counts(data_file, tok):
    out = _stream(data_file, keyword=KW, max_tokens=12, tokenizer=tok)
    assert all(len(tok(t)["input_ids"]) <= 12 for t in out.texts)
    assert out.too_long > 0
    assert out.scanned == len(out.texts) + out.empty + out.no_keyword + out.too_long
    # Over the whole split the counts are exact: 200 keyword rows, 40 of them long, 4 empty among them.
    n_ok = sum(1 for i in range(600) if i % 3 == 0 and i % 5 != 0 and i % 50 != 7)
    with pytest.raises(ValueError, match=rf"only {n_ok} of the {n_ok + 1}.*whole split \(600 rows\)") as err:
        _stream(data_file, n=n_ok + 1, keyword=KW, max_tokens=12, tokenizer=tok)
    assert "12 empty" in str(err.value)
    assert "40 over max_tokens=12" in str(err.value)
    with pytest.raises(ValueError, match="needs a tokenizer"):
        _stream(data_file, max_tokens=12)


def test_empty_texts_are_dropped(data_file):
    out = _stream(data_file, n=588)  # every non-empty row: the whole split is read
    assert out.scanned == 600
    assert out.empty == 12
    assert all(t.strip() for t in out.texts)


def test_missing_field_names_the_fields(data_file):
    with pytest.raises(ValueError, match=r"no field 'content'; fields present: \['meta', 'text'\]"):
        _stream(data_file, text_field="content")
    with pytest.raises(ValueError, match=r"'meta' holds .*int64.*, not text"):
        _stream(data_file, text_field="meta")


def test_bad_split_is_named(data_file):
    with pytest.raises(ValueError, match=r"no split 'validation'.*Available splits: \['train'\]"):
        _stream(data_file, split="validation")


def test_stream_reads_only_what_it_needs(tmp_path, monkeypatch):
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(20_000)]}), path, row_group_size=500)
    read = []
    original = parquet_module.Parquet._generate_tables

    def counting(self, *args, **kwargs):
        for key, table in original(self, *args, **kwargs):
            read.append(len(table))
            yield key, table

    monkeypatch.setattr(parquet_module.Parquet, "_generate_tables", counting)
    out = hfdata.stream_texts("parquet", data_files=str(path), n=10, seed=3, shuffle_buffer=100)
    assert out.scanned == 10
    assert 0 < sum(read) <= 2_000  # a few row groups of the 40
    assert set(out.texts) <= {f"row {i}" for i in range(20_000)}


def test_max_scan_stops_the_scan(data_file):
    with pytest.raises(ValueError, match=r"only 0 of the 5 .* in the first 300 rows \(max_scan\); scanned 300"):
        _stream(data_file, n=5, keyword="absent", max_scan=300)
    out = _stream(data_file, n=5, max_scan=50)
    assert out.scanned == 5 + out.empty


def test_json_builder_and_local_folder(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    rows = [{"body": f"text number {i}"} for i in range(50)]
    (folder / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    a = hfdata.stream_texts("json", data_files=str(folder / "part.jsonl"), text_field="body", n=10, seed=5)
    b = hfdata.stream_texts(str(folder), text_field="body", n=10, seed=5)
    assert a.texts == b.texts
    assert set(a.texts) <= {r["body"] for r in rows}
    prov = a.provenance
    json.dumps(prov)  # serialisable as it is
    assert prov["builder_name"] == "json"
    assert prov["resolved_revision"] is None
    assert prov["n_data_files"] == 1
    assert prov["data_files_head"] == [str(folder / "part.jsonl")]
    assert (prov["seed"], prov["n"], prov["text_field"], prov["shuffle_buffer"]) == (5, 10, "body", 10_000)
    # The file list fingerprint follows the files' sizes.
    (folder / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*rows, {"body": "one more"}]))
    c = hfdata.stream_texts("json", data_files=str(folder / "part.jsonl"), text_field="body", n=10, seed=5)
    assert c.provenance["data_files_sha256"] != prov["data_files_sha256"]


def test_hub_commit_is_read_from_the_resolved_urls():
    sha = "0123456789abcdef0123456789abcdef01234567"
    builder = SimpleNamespace(name="parquet", hash=sha, config=SimpleNamespace(name="default"))
    files = [f"hf://datasets/org/data@{sha}/data/train-0000{i}.parquet" for i in range(3)]
    prov = hfdata._provenance(builder, files, {"path": "org/data"})
    assert prov["resolved_revision"] == sha
    assert prov["n_data_files"] == 3
    assert prov["builder_hash"] == sha


def test_bad_arguments(data_file):
    for kw, match in [
        ({"n": 0}, "n must be positive"),
        ({"max_scan": 5}, "max_scan"),
        ({"keyword": ""}, "keyword"),
        ({"shuffle_buffer": 0}, "shuffle_buffer"),
    ]:
        with pytest.raises(ValueError, match=match):
            _stream(data_file, **kw)
