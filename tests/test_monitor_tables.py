"""The stages that combine per-checkpoint tables: `aggregate_monitors` (group means) and
`correlate` (Table 1), on small hand-made tables whose answers are computed here independently."""

import numpy as np
import polars as pl
import pytest
from scipy import stats

from grokpath import correlation, distance, stages, tables

STEPS = {"c1": 100, "c2": 200, "c3": 300, "c4": 400, "c5": 500, "c6": 600}
IDS = [f"s{i}" for i in range(6)]
MEMORIZED = {"s0": "c1", "s1": "c1", "s2": "c2", "s3": "c2", "s4": None, "s5": None}


def _write(rows, path, schema):
    tables.write(tables.frame(rows, schema), path, schema)
    return str(path)


def _per_checkpoint_tables(tmp_path, rng):
    """Pathway, loss, validation and distance tables of 6 samples at every checkpoint; returns the
    paths and the values written, by (step, sample)."""
    paths = {"pathways": [], "loss": [], "validation": [], "distance": []}
    consistency, loss, val = {}, {}, {}
    for step in STEPS:
        for sid in IDS:
            consistency[step, sid], loss[step, sid] = rng.uniform(0.2, 0.5), rng.uniform(0.5, 3.0)
        val[step] = rng.uniform(1, 2, size=3)
        base = {"model": "m", "step": step, "domain": "math"}
        paths["pathways"].append(
            _write(
                [
                    {
                        **base,
                        "sample_id": sid,
                        "pathway": "1,2-3",
                        "experts_per_layer": [2, 1],
                        "consistency": consistency[step, sid],
                        "mean_cosine": 0.5,
                        "routing_entropy": 1.0,
                        "tau": 0.7,
                    }
                    for sid in IDS
                ],
                tmp_path / f"p_{step}.parquet",
                tables.PATHWAYS_SCHEMA,
            )
        )
        paths["loss"].append(
            _write(
                [{**base, "sample_id": sid, "loss": loss[step, sid], "n_tokens": 5} for sid in IDS],
                tmp_path / f"l_{step}.parquet",
                tables.LOSS_SCHEMA,
            )
        )
        paths["validation"].append(
            _write(
                [{**base, "sample_id": f"v{k}", "loss": float(v), "n_tokens": 5} for k, v in enumerate(val[step])],
                tmp_path / f"v_{step}.parquet",
                tables.LOSS_SCHEMA,
            )
        )
        groups = {"all": IDS} | {
            stages.group_label(c): [s for s, m in MEMORIZED.items() if m == c] for c in ("c1", "c2")
        }
        paths["distance"].append(
            _write(
                [
                    {
                        **base,
                        "group": g,
                        "layer": layer,
                        "n_samples": len(members),
                        "n_pairs": 1,
                        "mean_distance": 10.0 * STEPS[step] + len(members) + (layer or 0),
                        "level": "char",
                    }
                    for g, members in groups.items()
                    for layer in (None, 0)
                ],
                tmp_path / f"d_{step}.parquet",
                tables.DISTANCE_SCHEMA,
            )
        )
    group_rows = [
        {
            "model": "m",
            "domain": "math",
            "sample_id": sid,
            "memorized_at": m,
            "memorized_step": STEPS[m] if m else None,
            "eps": 0.1,
            "delta": 0.05,
            "eps_searched": False,
        }
        for sid, m in MEMORIZED.items()
    ]
    paths["groups"] = [_write(group_rows, tmp_path / "groups.parquet", tables.GROUPS_SCHEMA)]
    return paths, consistency, loss, val


def test_aggregate_monitors_means_each_group_over_its_members(tmp_path):
    paths, consistency, loss, val = _per_checkpoint_tables(tmp_path, np.random.default_rng(0))
    out = tmp_path / "monitors.parquet"
    stages.aggregate_monitors(
        {"m": STEPS},
        paths["distance"],
        paths["pathways"],
        paths["loss"],
        paths["validation"],
        paths["groups"],
        str(out),
    )
    monitors = tables.read(out, tables.MONITORS_SCHEMA)
    members = {"all": IDS, "pretrain@c1": ["s0", "s1"], "pretrain@c2": ["s2", "s3"]}
    assert monitors.height == len(STEPS) * len(members)  # whole-pathway rows only, no group missing
    for row in monitors.iter_rows(named=True):
        step, group = row["step"], row["group"]
        assert row["step_number"] == STEPS[step]
        assert row["n_samples"] == len(members[group])
        assert row["mean_distance"] == 10.0 * STEPS[step] + len(members[group])  # the layer-null row
        assert row["mean_consistency"] == pytest.approx(np.mean([consistency[step, s] for s in members[group]]))
        assert row["mean_training_loss"] == pytest.approx(np.mean([loss[step, s] for s in members[group]]))
        assert row["validation_loss"] == pytest.approx(val[step].mean())


def _items(tmp_path, accuracy):
    """Per-item tables of one task: 10 items per checkpoint, the first round(10 * acc) correct."""
    out = []
    for step, acc in zip(STEPS, accuracy, strict=True):
        rows = [
            {
                "model": "m",
                "step": step,
                "domain": "math",
                "task": "math_generate",
                "doc_id": k,
                "item_id": f"i{k}",
                "prompt": "p",
                "target": "t",
                "prediction": "t" if k < round(10 * acc) else "x",
                "correct": int(k < round(10 * acc)),
            }
            for k in range(10)
        ]
        out.append(_write(rows, tmp_path / f"items_{step}.parquet", tables.EVAL_ITEMS_SCHEMA))
    return out


@pytest.mark.parametrize("window", ["rise", "all"])
def test_correlate_takes_the_window_and_the_moving_average_over_checkpoints(tmp_path, window):
    rng = np.random.default_rng(1)
    accuracy = [0.1, 0.0, 0.0, 0.4, 0.7, 0.9]
    monitors = pl.DataFrame(
        {
            "model": "m",
            "step": list(STEPS) * 2,
            "step_number": list(STEPS.values()) * 2,
            "domain": "math",
            "group": ["all"] * 6 + ["pretrain@c1"] * 6,  # only "all" enters Table 1
            "n_samples": [6] * 6 + [2] * 6,
            "mean_distance": rng.uniform(400, 500, 12),
            "mean_consistency": rng.uniform(0.2, 0.4, 12),
            "mean_training_loss": rng.uniform(0.5, 2.0, 12),
            "validation_loss": rng.uniform(1.0, 3.0, 12),
        }
    )
    monitors_path = tmp_path / "monitors.parquet"
    tables.write(monitors, monitors_path, tables.MONITORS_SCHEMA)
    settings = {"window": window, "checkpoints": [], "min_points": 3, "moving_average": 3, "bootstrap": 200}
    out = tmp_path / "corr.parquet"
    stages.correlate(str(monitors_path), _items(tmp_path, accuracy), settings, 0, str(out), str(tmp_path / "c.csv"))
    corr = tables.read(out, tables.CORRELATIONS_SCHEMA)

    # The rise starts at the last checkpoint within 10% of the accuracy range above the minimum.
    keep = [2, 3, 4, 5] if window == "rise" else list(range(6))
    assert keep == (correlation.rise_window(accuracy, 3) if window == "rise" else keep)
    every = monitors.filter(pl.col("group") == "all")
    loss = every["mean_training_loss"].to_numpy()
    moving = np.array([loss[max(0, i - 2) : i + 1].mean() for i in range(6)])  # trailing, over all checkpoints
    expected = {
        "pathway_distance": every["mean_distance"].to_numpy(),
        "pathway_consistency": every["mean_consistency"].to_numpy(),
        "training_loss": loss,
        "training_loss_ma": moving,
        "validation_loss": every["validation_loss"].to_numpy(),
    }
    assert sorted(corr["monitor"]) == sorted(expected)
    acc = np.asarray(accuracy)[keep]
    for row in corr.iter_rows(named=True):
        values = expected[row["monitor"]][keep]
        assert row["n_checkpoints"] == len(keep)
        assert row["checkpoints"] == ",".join(np.asarray(list(STEPS))[keep])
        assert row["pearson_r"] == pytest.approx(stats.pearsonr(acc, values).statistic)
        assert row["spearman_rho"] == pytest.approx(stats.spearmanr(acc, values).statistic)
        assert row["pearson_p"] == pytest.approx(stats.pearsonr(acc, values).pvalue)


def test_memorization_ablation_regroups_the_samples_at_each_threshold(tmp_path):
    # Loss trajectories over 6 checkpoints: s0 and s1 settle low early, s2 settles late and
    # higher, s3 keeps moving by 0.08 per checkpoint, s4 and s5 stay high.
    loss = {
        "s0": [2.0, 0.5, 0.5, 0.5, 0.5, 0.5],
        "s1": [2.0, 0.6, 0.6, 0.6, 0.6, 0.6],
        "s2": [3.0, 3.0, 3.0, 1.5, 1.5, 1.5],
        "s3": [0.9, 0.82, 0.74, 0.66, 0.58, 0.5],
        "s4": [3.0] * 6,
        "s5": [3.0] * 6,
    }
    paths = {"loss": [], "pathways": []}
    rng = np.random.default_rng(3)
    strings = {}
    for k, step in enumerate(STEPS):
        base = {"model": "m", "step": step, "domain": "math"}
        rows = [{**base, "sample_id": s, "loss": loss[s][k], "n_tokens": 5} for s in IDS]
        paths["loss"].append(_write(rows, tmp_path / f"l_{step}.parquet", tables.LOSS_SCHEMA))
        for s in IDS:
            strings[step, s] = "-".join(",".join(map(str, rng.permutation(6)[:2])) for _ in range(3))
        rows = [
            {
                **base,
                "sample_id": s,
                "pathway": strings[step, s],
                "experts_per_layer": [2, 2, 2],
                "consistency": 0.3,
                "mean_cosine": 0.5,
                "routing_entropy": 1.0,
                "tau": 0.7,
            }
            for s in IDS
        ]
        paths["pathways"].append(_write(rows, tmp_path / f"p_{step}.parquet", tables.PATHWAYS_SCHEMA))
    groups = [
        {
            "model": "m",
            "domain": "math",
            "sample_id": s,
            "memorized_at": None,
            "memorized_step": None,
            "eps": 1.0,
            "delta": 0.05,
            "eps_searched": True,
        }
        for s in IDS
    ]
    groups_path = _write(groups, tmp_path / "groups.parquet", tables.GROUPS_SCHEMA)
    out = tmp_path / "ablation.parquet"
    settings = {"level": "char", "max_pairs": None}
    stages.ablate_memorization(
        "m",
        "math",
        list(STEPS),
        paths["loss"],
        paths["pathways"],
        groups_path,
        [1.0, 2.0],
        [0.05, 0.1],
        settings,
        0,
        str(out),
    )
    table = tables.read(out, tables.MEMORIZATION_ABLATION_SCHEMA)
    members = {
        ("eps", 1.0): ["s0", "s1"],  # eps 1.0: s2 (1.5) is not low enough
        ("eps", 2.0): ["s0", "s1", "s2"],  # eps 2.0 takes s2 from its 4th checkpoint, before the last
        ("delta", 0.05): ["s0", "s1"],
        ("delta", 0.1): ["s0", "s1", "s3"],  # s3 stays within 0.1 of its last loss from the 5th on
    }
    assert table.height == len(members) * len(STEPS)
    for row in table.iter_rows(named=True):
        want = members[row["parameter"], row["value"]]
        assert row["n_memorized"] == len(want), (row["parameter"], row["value"])
        assert row["eps"] == (row["value"] if row["parameter"] == "eps" else 1.0)
        expected = distance.mean_pairwise([strings[row["step"], s] for s in want])
        assert (row["n_pairs"], row["mean_distance"]) == (expected[0], pytest.approx(expected[1]))
