"""grokpath.monitor: the same numbers as the workflow's stages, from a model in memory, a training
callback, a hook for hand-written loops, and `grokpath monitor` on a saved checkpoint."""

import json

import numpy as np
import polars as pl
import pytest
import torch
from conftest import SUMS, local_checkpoint, random_olmoe

from grokpath import cli, distance, extraction, monitor, samples, stages, tables
from grokpath.tokenizer import train_word_tokenizer

TEXTS = SUMS


@pytest.fixture(scope="module")
def tok():
    return train_word_tokenizer(TEXTS)


@pytest.fixture(scope="module")
def checkpoint(tok, tmp_path_factory):
    return local_checkpoint(tok, tmp_path_factory.mktemp("ckpt"))


def test_measure_equals_the_workflow_tables(tok, checkpoint, tmp_path):
    manifest = samples.build_manifest(TEXTS, tok, "m", "math", "samples", len(TEXTS), 0, 64)
    val = samples.build_manifest(TEXTS[:4], tok, "m", "math", "validation", 4, 0, 64)
    tables.write(manifest, tmp_path / "s.parquet", tables.SAMPLES_SCHEMA)
    tables.write(val, tmp_path / "v.parquet", tables.SAMPLES_SCHEMA)
    out = {k: str(tmp_path / f"{k}.parquet") for k in ("routing", "loss", "vloss", "pathways")}
    settings = {"threads": 1, "device": "cpu", "dtype": "float32", "batch_size": 5, "routing": "full", "max_tokens": 64}
    stages.extract_routing(
        "m",
        "c1",
        str(checkpoint),
        {"math": str(tmp_path / "s.parquet")},
        {"math": str(tmp_path / "v.parquet")},
        {"math": out["routing"]},
        {"math": out["loss"]},
        {"math": out["vloss"]},
        str(tmp_path / "routers.safetensors"),
        settings,
        0,
    )
    stages.compute_pathways(
        "m", "c1", "math", out["routing"], str(tmp_path / "routers.safetensors"), 0.7, out["pathways"]
    )
    paths = tables.read(out["pathways"], tables.PATHWAYS_SCHEMA).sort("sample_id")
    loss = tables.read(out["loss"], tables.LOSS_SCHEMA).sort("sample_id")
    groups = pl.DataFrame(
        {"sample_id": paths["sample_id"], "memorized_at": [None] * paths.height},
        schema_overrides={"memorized_at": pl.String},
    )
    rows = stages.group_distances(
        "m",
        "c1",
        "math",
        dict(zip(paths["sample_id"], paths["pathway"], strict=True)),
        groups,
        ["c1"],
        {"level": "char", "layerwise": False, "max_pairs": 10_000},
        0,
    )

    net, _ = extraction.load_checkpoint(checkpoint)
    net.train()  # as during training: measure must leave it so
    got = monitor.measure(
        net, tok, manifest["text"].to_list(), sample_ids=manifest["sample_id"].to_list(), batch_size=7
    )
    assert net.training
    assert got.per_sample["sample_id"] == paths["sample_id"].to_list()
    assert got.per_sample["pathway"] == paths["pathway"].to_list()
    np.testing.assert_allclose(got.per_sample["consistency"], paths["consistency"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(got.per_sample["loss"], loss["loss"].to_numpy(), rtol=1e-6)
    assert got.distance == pytest.approx(rows[0]["mean_distance"], rel=1e-12)
    assert got.n_pairs == rows[0]["n_pairs"] == distance.n_pairs(len(TEXTS))
    assert got.consistency == pytest.approx(float(paths["consistency"].mean()), rel=1e-6)


def test_groups_and_errors(tok, checkpoint):
    net, _ = extraction.load_checkpoint(checkpoint)
    ids = [f"x{i}" for i in range(len(TEXTS))]
    got = monitor.measure(net, tok, TEXTS, sample_ids=ids, groups={"early": ids[:5]})
    assert set(got.group_distance) == {"all", "early"}
    by_id = dict(zip(got.per_sample["sample_id"], got.per_sample["pathway"], strict=True))
    assert got.group_distance["early"] == distance.mean_pairwise([by_id[s] for s in ids[:5]])[1]
    assert got.group_distance["all"] == got.distance == distance.mean_pairwise(list(by_id.values()))[1]
    token = monitor.measure(net, tok, TEXTS, sample_ids=ids, groups={"early": ids[:5]}, level="token")
    assert (
        token.group_distance["early"]
        == distance.mean_pairwise([distance.encode(by_id[s], "token") for s in ids[:5]])[1]
    )
    assert set(got.metrics()) == {
        "grokpath/pathway_distance",
        "grokpath/pathway_consistency",
        "grokpath/sample_loss",
        "grokpath/pathway_distance/early",
    }
    with pytest.raises(ValueError, match="group 'bad' names samples that were not measured"):
        monitor.measure(net, tok, TEXTS, sample_ids=ids, groups={"bad": ["nope"]})
    with pytest.raises(ValueError, match="at least 2 samples"):
        monitor.measure(net, tok, TEXTS[:1])
    with pytest.raises(ValueError, match="either texts or token_ids"):
        monitor.measure(net, tok)


def test_hook_in_a_hand_written_loop(tok):
    model = random_olmoe(tok, hidden=16, layers=2)
    hook = monitor.MonitorHook(model, tok, TEXTS[:8], every=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = tok(TEXTS[:4], padding=True, return_tensors="pt")
    for step in range(1, 6):
        model.train()
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        hook.step(step)
    assert [m.step for m in hook.history] == [2, 4]
    assert hook.seconds > 0
    assert hook.history[0].distance != hook.history[1].distance or hook.history[0].loss != hook.history[1].loss
    again = monitor.measure(model, tok, TEXTS[:8])
    assert again.loss != hook.history[-1].loss  # step 5 changed the model after the last measurement


def test_trainer_callback_logs_through_the_trainer(tok, tmp_path):
    from transformers import Trainer, TrainingArguments

    model = random_olmoe(tok, hidden=16, layers=2)
    rows = [tok(t)["input_ids"] for t in TEXTS]

    def collate(batch):
        enc = tok.pad({"input_ids": batch}, return_tensors="pt")
        return {**enc, "labels": enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)}

    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=4,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        logging_steps=100,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate)
    callback = monitor.GrokpathCallback(tok, TEXTS[:8], every=2, trainer=trainer)
    trainer.add_callback(callback)
    trainer.train()
    logged = [h for h in trainer.state.log_history if "grokpath/pathway_distance" in h]
    assert [h["step"] for h in logged] == [2, 4]
    assert [m.step for m in callback.history] == [2, 4]
    final = monitor.measure(trainer.model, tok, TEXTS[:8])  # the model after step 4, as measured at step 4
    assert logged[-1]["grokpath/pathway_distance"] == pytest.approx(final.distance)
    assert logged[-1]["grokpath/pathway_consistency"] == pytest.approx(final.consistency)


def test_cli_monitor_on_a_saved_checkpoint(tok, checkpoint, tmp_path, capsys):
    data = tmp_path / "samples.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    log = tmp_path / "logs" / "monitor.jsonl"
    for step in (10, 20):
        assert (
            cli.main(["monitor", str(checkpoint), "--samples", str(data), "--step", str(step), "--log", str(log)]) == 0
        )
    assert "pathway distance" in capsys.readouterr().out
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20]
    net, _ = extraction.load_checkpoint(checkpoint)
    direct = monitor.measure(net, tok, TEXTS)
    assert records[0]["pathway_distance"] == pytest.approx(direct.distance)
    assert records[0]["pathway_consistency"] == pytest.approx(direct.consistency)
    assert cli.main(["monitor", str(checkpoint), "--samples", str(data), "--tau", "1.5"]) == 2
    assert "--tau must be in (0, 1]" in capsys.readouterr().err
