"""grokpath.monitor: the same numbers as the workflow's stages, from a model in memory, a training
callback, a hook for hand-written loops, and `grokpath monitor` on a saved checkpoint."""

import json

import numpy as np
import pytest
import torch
from conftest import SUMS, extract_sums, random_olmoe

from grokpath import cli, distance, extraction, monitor, stages, tables

TEXTS = SUMS


def test_measure_equals_the_workflow_tables(sums_tok, sums_checkpoint, tmp_path):
    out = extract_sums(sums_tok, sums_checkpoint, tmp_path)
    manifest = tables.read(out["samples"], tables.SAMPLES_SCHEMA)
    out["pathways"] = str(tmp_path / "pathways.parquet")
    stages.compute_pathways("m", "c1", "math", out["routing"], out["routers"], 0.7, out["pathways"])
    paths = tables.read(out["pathways"], tables.PATHWAYS_SCHEMA).sort("sample_id")
    loss = tables.read(out["loss"], tables.LOSS_SCHEMA).sort("sample_id")
    rows = stages.group_distances(
        "m",
        "c1",
        "math",
        dict(zip(paths["sample_id"], paths["pathway"], strict=True)),
        dict.fromkeys(paths["sample_id"]),  # no sample memorized: the group "all" alone
        ["c1"],
        {"level": "char", "layerwise": False, "max_pairs": 10_000},
        0,
    )

    net, _ = extraction.load_checkpoint(sums_checkpoint)
    net.train()  # as during training: measure must leave it so
    got = monitor.measure(
        net, sums_tok, manifest["text"].to_list(), sample_ids=manifest["sample_id"].to_list(), batch_size=7
    )
    assert net.training
    assert got.per_sample["sample_id"] == paths["sample_id"].to_list()
    assert got.per_sample["pathway"] == paths["pathway"].to_list()
    np.testing.assert_allclose(got.per_sample["consistency"], paths["consistency"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(got.per_sample["loss"], loss["loss"].to_numpy(), rtol=1e-6)
    assert got.distance == pytest.approx(rows[0]["mean_distance"], rel=1e-12)
    assert got.n_pairs == rows[0]["n_pairs"] == distance.n_pairs(len(TEXTS))
    assert got.consistency == pytest.approx(float(paths["consistency"].mean()), rel=1e-6)


def test_groups_and_errors(sums_tok, sums_checkpoint):
    net, _ = extraction.load_checkpoint(sums_checkpoint)
    ids = [f"x{i}" for i in range(len(TEXTS))]
    got = monitor.measure(net, sums_tok, TEXTS, sample_ids=ids, groups={"early": ids[:5]})
    assert set(got.group_distance) == {"all", "early"}
    by_id = dict(zip(got.per_sample["sample_id"], got.per_sample["pathway"], strict=True))
    assert got.group_distance["early"] == distance.mean_pairwise([by_id[s] for s in ids[:5]])[1]
    assert got.group_distance["all"] == got.distance == distance.mean_pairwise(list(by_id.values()))[1]
    token = monitor.measure(net, sums_tok, TEXTS, sample_ids=ids, groups={"early": ids[:5]}, level="token")
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
        monitor.measure(net, sums_tok, TEXTS, sample_ids=ids, groups={"bad": ["nope"]})
    with pytest.raises(ValueError, match="at least 2 samples"):
        monitor.measure(net, sums_tok, TEXTS[:1])
    with pytest.raises(ValueError, match="either texts or token_ids"):
        monitor.measure(net, sums_tok)


def test_hook_in_a_hand_written_loop(sums_tok, capfd):
    model = random_olmoe(sums_tok, hidden=16, layers=2)
    hook = monitor.MonitorHook(model, sums_tok, TEXTS[:8], every=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = sums_tok(TEXTS[:4], padding=True, return_tensors="pt")
    for step in range(1, 6):
        model.train()
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        hook.step(step)
    assert [m.step for m in hook.history] == [2, 4]
    assert "sample/s" not in capfd.readouterr().err  # no progress bar inside the training loop
    assert hook.seconds > 0
    assert hook.history[0].distance != hook.history[1].distance or hook.history[0].loss != hook.history[1].loss
    again = monitor.measure(model, sums_tok, TEXTS[:8])
    assert again.loss != hook.history[-1].loss  # step 5 changed the model after the last measurement
    assert "monitor: 100%" in capfd.readouterr().err  # a pass of its own shows its progress


def test_trainer_callback_logs_through_the_trainer(sums_tok, tmp_path):
    from transformers import Trainer, TrainingArguments

    model = random_olmoe(sums_tok, hidden=16, layers=2)
    rows = [sums_tok(t)["input_ids"] for t in TEXTS]

    def collate(batch):
        enc = sums_tok.pad({"input_ids": batch}, return_tensors="pt")
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
    callback = monitor.GrokpathCallback(sums_tok, TEXTS[:8], every=2, trainer=trainer)
    trainer.add_callback(callback)
    trainer.train()
    logged = [h for h in trainer.state.log_history if "grokpath/pathway_distance" in h]
    assert [h["step"] for h in logged] == [2, 4]
    assert [m.step for m in callback.history] == [2, 4]
    final = monitor.measure(trainer.model, sums_tok, TEXTS[:8])  # the model after step 4, as measured at step 4
    assert logged[-1]["grokpath/pathway_distance"] == pytest.approx(final.distance)
    assert logged[-1]["grokpath/pathway_consistency"] == pytest.approx(final.consistency)


def test_cli_monitor_on_a_saved_checkpoint(sums_tok, sums_checkpoint, tmp_path, capsys):
    data = tmp_path / "samples.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    log = tmp_path / "logs" / "monitor.jsonl"
    for step in (10, 20):
        assert (
            cli.main(["monitor", str(sums_checkpoint), "--samples", str(data), "--step", str(step), "--log", str(log)])
            == 0
        )
    assert "pathway distance" in capsys.readouterr().out
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20]
    net, _ = extraction.load_checkpoint(sums_checkpoint)
    direct = monitor.measure(net, sums_tok, TEXTS)
    assert records[0]["pathway_distance"] == pytest.approx(direct.distance)
    assert records[0]["pathway_consistency"] == pytest.approx(direct.consistency)
    assert cli.main(["monitor", str(sums_checkpoint), "--samples", str(data), "--tau", "1.5"]) == 2
    assert "--tau must be in (0, 1]" in capsys.readouterr().err


def test_cli_monitor_refuses_bad_input_before_loading_weights(sums_checkpoint, tmp_path, capsys, monkeypatch):
    data = tmp_path / "samples.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))

    def no_load(*args, **kwargs):
        raise AssertionError("weights loaded before the input was checked")

    monkeypatch.setattr(extraction, "load_checkpoint", no_load)
    missing = tmp_path / "nonexistent"
    assert cli.main(["monitor", str(missing), "--samples", str(data)]) == 2
    assert f"checkpoint {missing} does not exist; give a checkpoint folder" in capsys.readouterr().err
    assert cli.main(["monitor", str(tmp_path), "--samples", str(data)]) == 2
    assert f"checkpoint {tmp_path} has no config.json" in capsys.readouterr().err
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"text": TEXTS[0]}) + "\n")
    assert cli.main(["monitor", str(sums_checkpoint), "--samples", str(one)]) == 2
    assert "the monitors need at least 2 samples, got 1" in capsys.readouterr().err
    assert cli.main(["monitor", str(sums_checkpoint), "--samples", str(data), "--batch-size", "0"]) == 2
    assert "--batch-size must be a positive number of samples, got 0" in capsys.readouterr().err
