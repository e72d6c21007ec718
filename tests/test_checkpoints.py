import os
import time
from types import SimpleNamespace

import pytest
from conftest import random_olmoe

from grokpath import checkpoints
from grokpath.tokenizer import train_word_tokenizer


@pytest.fixture
def series(tmp_path):
    tok = train_word_tokenizer(["a b c d"])
    src = tmp_path / "src"
    random_olmoe(tok, hidden=16, layers=2).save_pretrained(src)
    tok.save_pretrained(src)
    dest = tmp_path / "ckpt"
    checkpoints.materialize_folder(src, dest, "local", "10")
    return src, dest


@pytest.mark.parametrize("damage", ["truncate", "alter", "delete"])
def test_damaged_weights_are_caught_naming_the_file(series, damage):
    _, dest = series
    weights = dest / "model.safetensors"
    data = weights.read_bytes()
    weights.unlink()  # a hard link to the source: replace, do not write through it
    if damage == "truncate":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "alter":
        weights.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ValueError, match=r"ckpt: file model.safetensors does not match its manifest"):
        checkpoints.read_manifest(dest)


def test_incomplete_folder_and_missing_source(series, tmp_path):
    _, dest = series
    (dest / checkpoints.MANIFEST).unlink()
    with pytest.raises(FileNotFoundError, match=r"is not a complete checkpoint: manifest\.json is missing"):
        checkpoints.read_manifest(dest)
    with pytest.raises(FileNotFoundError, match=r"nowhere has no config.json \(source local, revision 5\)"):
        checkpoints.materialize_folder(tmp_path / "nowhere", tmp_path / "x", "local", "5")


def test_released_weights_come_back_checked(series):
    src, dest = series
    before = checkpoints.read_manifest(dest)
    freed = checkpoints.release_weights(dest)
    assert freed == (src / "model.safetensors").stat().st_size
    assert not (dest / "model.safetensors").exists()
    assert checkpoints.read_manifest(dest, skip_weights=True) == before  # the tokenizer stays usable
    with pytest.raises(ValueError, match="does not match its manifest"):
        checkpoints.read_manifest(dest)
    assert checkpoints.ensure_weights(dest) == before
    assert not (dest / checkpoints.RELEASED).exists()


def test_restore_refuses_a_changed_source(series):
    src, dest = series
    checkpoints.release_weights(dest)
    data = (src / "model.safetensors").read_bytes()
    (src / "model.safetensors").unlink()
    (src / "model.safetensors").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ValueError, match="no longer matches the manifest"):
        checkpoints.ensure_weights(dest)
    assert (dest / checkpoints.RELEASED).exists()  # still marked: nothing half-restored is trusted
    assert not (dest / "model.safetensors").exists()


def test_a_dense_model_is_refused_when_it_is_downloaded(tmp_path):
    """Its family is checked when the checkpoint is brought in, not after every download and load."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from grokpath import stages

    cfg = LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "dense")
    message = r"model type 'llama' \(config.json\) is not a supported MoE family; supported: olmoe"
    with pytest.raises(ValueError, match=message):
        stages.download_checkpoint("local", str(tmp_path / "dense"), "1", str(tmp_path / "ckpt"))
    assert not (tmp_path / "ckpt" / checkpoints.MANIFEST).exists()  # not a complete checkpoint


def test_a_tokenizer_that_disagrees_with_the_samples_fails_before_released_weights_come_back(sums_tok, tmp_path):
    """extract_routing checks the tokenizer a released folder keeps (disk-bounded runs) on the
    first samples of every split before it fetches the weights back: a series it cannot monitor
    costs no download."""
    from conftest import SUMS, local_checkpoint

    from grokpath import samples, stages, tables

    ckpt = local_checkpoint(sums_tok, tmp_path)
    checkpoints.release_weights(ckpt)
    other = train_word_tokenizer([t + " zebra yak" for t in SUMS[::-1]])
    assert other(SUMS[0])["input_ids"] != sums_tok(SUMS[0])["input_ids"]
    paths = {split: str(tmp_path / f"{split}.parquet") for split in ("samples", "validation")}
    for split, path in paths.items():
        manifest = samples.build_manifest(SUMS, other, "m", "math", split, len(SUMS), 0, 64)
        tables.write(manifest, path, tables.SAMPLES_SCHEMA)
    settings = {"threads": 1, "device": "cpu", "dtype": "float32", "batch_size": 5, "routing": "full", "max_tokens": 64}
    out = {"math": str(tmp_path / "out.parquet")}
    with pytest.raises(ValueError, match=r"checkpoint m/c1: its tokenizer gives different token ids"):
        stages.extract_routing(
            "m", "c1", str(ckpt), {"math": paths["samples"]}, {"math": paths["validation"]}, out, out, out,
            str(tmp_path / "routers.safetensors"), settings, 0,
        )  # fmt: skip
    assert (ckpt / checkpoints.RELEASED).exists()
    assert not (ckpt / "model.safetensors").exists()
    assert not (tmp_path / "out.parquet").exists()


@pytest.fixture
def count_hashes(monkeypatch):
    """The names of the files read and hashed, in order."""
    hashed = []
    real = checkpoints.sha256_file

    def counting(path):
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(checkpoints, "sha256_file", counting)
    return hashed


def later(monkeypatch, seconds=10):
    """Verification runs `seconds` after the files were last changed (a test's files are new)."""
    monkeypatch.setattr(checkpoints, "time", SimpleNamespace(time_ns=lambda: time.time_ns() + seconds * 10**9))


def test_an_unchanged_checkpoint_is_verified_without_reading_it_again(series, count_hashes, monkeypatch):
    _, dest = series
    later(monkeypatch)
    count_hashes.clear()
    manifest = checkpoints.read_manifest(dest)
    assert sorted(count_hashes) == sorted(f["name"] for f in manifest["files"])
    assert (dest / checkpoints.VERIFIED).is_file()
    count_hashes.clear()
    assert checkpoints.read_manifest(dest) == manifest
    assert count_hashes == []
    # the stamps are hidden: not part of the manifest or its content hash
    assert checkpoints.VERIFIED not in {f["name"] for f in checkpoints.file_entries(dest)}


@pytest.mark.parametrize("change", ["in place, same size, mtime set back", "replaced, same size"])
def test_a_changed_file_is_hashed_again_and_caught(series, count_hashes, monkeypatch, change):
    _, dest = series
    later(monkeypatch)
    checkpoints.read_manifest(dest)
    weights = dest / "model.safetensors"
    before = weights.stat()
    data = weights.read_bytes()
    damaged = data[:-1] + bytes([data[-1] ^ 1])
    if change.startswith("in place"):  # writes through the hard link: the source is damaged too
        with open(weights, "r+b") as fh:
            fh.write(damaged)
        os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))  # ctime cannot be set back
    else:
        weights.unlink()
        weights.write_bytes(damaged)
    count_hashes.clear()
    with pytest.raises(ValueError, match=r"file model.safetensors does not match its manifest"):
        checkpoints.read_manifest(dest)
    assert count_hashes[-1] == "model.safetensors"


def test_a_file_changed_just_before_it_was_hashed_is_hashed_again(series, count_hashes):
    _, dest = series  # written moments ago: a change in the same clock tick could go unseen
    checkpoints.read_manifest(dest)
    count_hashes.clear()
    checkpoints.read_manifest(dest)
    assert "model.safetensors" in count_hashes


def test_damaged_stamps_mean_hashing_everything(series, count_hashes, monkeypatch):
    _, dest = series
    later(monkeypatch)
    checkpoints.read_manifest(dest)
    (dest / checkpoints.VERIFIED).write_text("{not json")
    count_hashes.clear()
    manifest = checkpoints.read_manifest(dest)
    assert sorted(count_hashes) == sorted(f["name"] for f in manifest["files"])
    count_hashes.clear()
    checkpoints.read_manifest(dest)  # and they were written afresh
    assert count_hashes == []


def test_released_and_restored_weights_are_hashed_again(series, count_hashes, monkeypatch):
    _, dest = series
    later(monkeypatch)
    checkpoints.read_manifest(dest)
    checkpoints.release_weights(dest)
    count_hashes.clear()
    checkpoints.ensure_weights(dest)
    # linked back, then hashed once where it is, and stamped there
    assert count_hashes == ["model.safetensors"]
    count_hashes.clear()
    checkpoints.read_manifest(dest)
    assert count_hashes == []
