import json

import pytest

from grokpath import extraction, samples
from grokpath.tokenizer import train_word_tokenizer

TEXTS = ["a b c", "a b c d e f g h", "b c", "c d e f g h a b c d"]


@pytest.fixture(scope="module")
def tok():
    return train_word_tokenizer(TEXTS)


def test_too_long_samples_are_refused_with_a_count(tok):
    with pytest.raises(ValueError, match=r"math/samples: 2 of 4 samples exceed max_tokens=5 .*too_long: truncate"):
        samples.build_manifest(TEXTS, tok, "m", "math", "samples", 4, 0, max_tokens=5)


def test_truncated_samples_hash_what_extraction_reads(tok, caplog):
    df = samples.build_manifest(TEXTS, tok, "m", "math", "samples", 4, 0, max_tokens=5, too_long="truncate")
    assert df["n_tokens"].to_list() == [min(5, len(tok(t)["input_ids"])) for t in TEXTS]
    assert "2 of 4 samples cut to their first 5 tokens" in caplog.text
    ids = extraction.tokenize_checked(
        tok, df["text"].to_list(), df["sample_id"].to_list(), df["token_sha256"].to_list(), "m/c", truncate_to=5
    )
    assert [len(x) for x in ids] == df["n_tokens"].to_list()
    with pytest.raises(ValueError, match="different token ids"):  # read without the cut: caught
        extraction.tokenize_checked(
            tok, df["text"].to_list(), df["sample_id"].to_list(), df["token_sha256"].to_list(), "m/c"
        )


def test_more_samples_than_the_source_has_are_refused(tok):
    with pytest.raises(ValueError, match=r"math/validation: domains.math.n_validation is 5, but the source has only 4"):
        samples.build_manifest(TEXTS, tok, "m", "math", "validation", 5, 0, max_tokens=50)
    assert samples.build_manifest(TEXTS, tok, "m", "math", "validation", 4, 0, max_tokens=50).height == 4


def test_samples_without_a_next_token_are_refused_before_extraction(tok):
    def no_bos(text):  # a tokenizer that adds no BOS: a one-word text is one token
        return {"input_ids": tok(text)["input_ids"][1:]}

    with pytest.raises(ValueError, match=r"math/samples: 1 of 5 samples have fewer than 2 tokens.*math-samples-000004"):
        samples.build_manifest([*TEXTS, "a"], no_bos, "m", "math", "samples", 5, 0, max_tokens=50)


def test_unknown_too_long_mode(tok):
    with pytest.raises(ValueError, match=r"too_long must be one of \('refuse', 'truncate'\)"):
        samples.build_manifest(TEXTS, tok, "m", "math", "samples", 4, 0, max_tokens=5, too_long="drop")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"no samples \(the file is empty\)"),
        (b'{"text": "ok"}\n{"text": \n', r"s.jsonl:2: not valid JSON"),
        (b'{"text": "ok"}\n{"body": "x"}\n', r"row 2 has no non-empty string field 'text'"),
        (b'{"text": "caf\xe9"}\n', r"not valid UTF-8"),
    ],
)
def test_bad_sample_files_name_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "s.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as err:
        samples.read_texts(path)
    assert str(path) in str(err.value)


def test_good_file(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    assert samples.read_texts(path) == TEXTS


def test_a_hub_domains_test_set_is_checked_before_its_datasets_are_streamed(tmp_path):
    from conftest import SUMS, local_checkpoint

    from grokpath import stages

    tok = train_word_tokenizer(SUMS)
    ckpt = local_checkpoint(tok, tmp_path)
    (tmp_path / "test.jsonl").write_text("")
    settings = {
        "source": "hf",
        "n_samples": 4,
        "n_validation": 2,
        # a dataset that cannot be reached (the tests are offline): streaming would fail on it
        "dataset": {"path": "nobody/nothing"},
        "validation_dataset": {"path": "nobody/nothing"},
        "test_path": str(tmp_path / "test.jsonl"),
    }
    outs = [str(tmp_path / f"{k}.parquet") for k in ("s", "v")] + [str(tmp_path / "t.jsonl")]
    with pytest.raises(ValueError, match=r"test.jsonl: the test set is empty"):
        stages.prepare_samples("m", "math", settings, 0, 64, None, str(ckpt), *outs)
