"""The paper's figures, reproduced on any series: each a function from tables to a PNG and a PDF.

Every figure stands on its own: a title saying what it shows, axis labels with units, legends.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from grokpath.io import atomic_path

MEMORIZED_PREFIX = "pretrain@"
MONITOR_UNITS = {  # the pathway distance's unit depends on the distance level (distance_unit)
    "training_loss": "nats/token",
    "training_loss_ma": "nats/token",
    "validation_loss": "nats/token",
}


# Between panels of a figure with second y axes, in font sizes (tight_layout's default: 1.08):
# there a panel's right-hand y label faces the next panel's left-hand one, and at the default they
# nearly touched and read as one line (Fig. 4, the pretraining trajectory).
_TWIN_W_PAD = 3.0


def save(fig: plt.Figure, png: str | Path, pdf: str | Path, layout: bool = True) -> None:
    """Lay the panels out (once, here: a legend below the panels first makes the figure taller)
    and write both files, one draw each; `layout=False` for a figure that places its one artist
    itself, which is cropped to what it drew instead."""
    if layout:
        _grow_for_legends_below(fig)
        fig.tight_layout(w_pad=_TWIN_W_PAD if _has_twin_axes(fig) else None)
        # tight_layout leaves a placeholder layout engine behind, and with any engine (or
        # bbox_inches="tight") savefig draws the whole figure once more before each file: a third
        # of a many-panel figure's saving time. Laid out, the figure already fits its canvas.
        fig.set_layout_engine(None)
    for path in (png, pdf):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], dpi=150, bbox_inches=None if layout else "tight")
    plt.close(fig)


# From the bottom of a panel to below its x axis label (ticks, tick labels and label at
# matplotlib's default sizes), in points: where `_legend_below` puts a legend's top.
_BELOW_XLABEL_PT = 36.0


_ONE_ROW_CHARS = 50  # characters of labels that fit side by side under a 5-inch panel at 7 points


def _legend_below(ax: plt.Axes, handles: list | None = None, labels: list | None = None, fontsize: float = 7) -> None:
    """The panel's legend under its x axis label, out of the data's way. Inside a panel, `loc="best"`
    avoids only the lines of the panel's own axes, not those of a second y axis, and a fixed
    corner covers whatever runs there: legends hid curves (Fig. 4's math panel, the live
    monitors). `tight_layout` makes room for it (a taller figure keeps the panels' size)."""
    if handles is None or labels is None:
        handles, labels = ax.get_legend_handles_labels()
    ax.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        borderaxespad=_BELOW_XLABEL_PT / fontsize,  # in font sizes
        # one row where up to three short labels fit under a panel, else two columns
        ncol=len(labels) if len(labels) <= 3 and sum(map(len, labels)) <= _ONE_ROW_CHARS else 2,
        fontsize=fontsize,
        frameon=False,
    )


def _grow_for_legends_below(fig: plt.Figure) -> None:
    """Make the figure taller by each row of panels' tallest legend below its panels
    (`_legend_below`), so `tight_layout` keeps the panels' height instead of squeezing them."""
    renderer = fig.canvas.get_renderer()
    tallest: dict[int, float] = {}
    for ax in fig.axes:
        legend = ax.get_legend()
        spec = ax.get_subplotspec()
        if legend is None or spec is None:
            continue
        box, panel = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
        if box.y1 <= panel.y0:  # below its panel
            row = spec.rowspan.start
            tallest[row] = max(tallest.get(row, 0.0), box.height + _BELOW_XLABEL_PT / 72 * fig.dpi)
    if tallest:
        fig.set_figheight(fig.get_figheight() + sum(tallest.values()) / fig.dpi)


def _has_twin_axes(fig: plt.Figure) -> bool:
    """Whether a panel has a second y axis (`twinx`: another Axes in the same grid cell)."""
    specs = [spec for ax in fig.axes if (spec := ax.get_subplotspec()) is not None]
    return len(specs) != len(set(specs))


def _twin_legend(ax: plt.Axes, twin: plt.Axes, fontsize: float = 7) -> None:
    """One legend for the lines of a panel and of its second y axis, below the panel."""
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    _legend_below(ax, h1 + h2, l1 + l2, fontsize)


def _panels(n: int, width: float = 5.0, height: float = 3.6) -> tuple[plt.Figure, list[plt.Axes]]:
    fig, axes = plt.subplots(1, max(n, 1), figsize=(width * max(n, 1), height), squeeze=False)
    return fig, list(axes[0])


def trajectory(traj: pl.DataFrame, summary: dict, png: str, pdf: str) -> None:
    """Training loss and train/held-out accuracy of the tiny series, per domain, with the measured
    convergence and rise steps marked."""
    domains = traj["domain"].unique(maintain_order=True).to_list()
    fig, axes = _panels(len(domains))
    for ax, domain in zip(axes, domains, strict=True):
        d = traj.filter(pl.col("domain") == domain).sort("step")
        ax.plot(d["step"], d["train_accuracy"], color="tab:blue", label="train accuracy")
        ax.plot(d["step"], d["test_accuracy"], color="tab:red", label="held-out accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("training step")
        ax.set_ylabel("accuracy (fraction correct)")
        loss_ax = ax.twinx()
        loss_ax.plot(d["step"], d["train_loss"], color="tab:gray", linestyle="--", label="training loss")
        loss_ax.set_ylabel("training loss (nats/token)")
        s = summary.get(domain, {})
        for key, style, label in (
            ("loss_converged_step", ":", "loss flat"),
            ("test_accuracy_rise_step", "-.", "held-out rise"),
        ):
            if s.get(key) is not None:
                ax.axvline(s[key], color="black", linestyle=style, linewidth=1, label=f"{label} (step {s[key]})")
        ax.set_title(domain)
        _twin_legend(ax, loss_ax, fontsize=7)
    fig.suptitle("Tiny MoE pretraining: training loss flattens before held-out accuracy rises")
    save(fig, png, pdf)


def memorized_counts(groups: pl.DataFrame, accuracy: pl.DataFrame, steps: dict[str, int], png: str, pdf: str) -> None:
    """Fig 1: samples memorized at each checkpoint (bars) with benchmark accuracy (line), per domain."""
    domains = groups["domain"].unique(maintain_order=True).to_list()
    fig, axes = _panels(len(domains))
    order = sorted(steps, key=steps.get)
    for ax, domain in zip(axes, domains, strict=True):
        g = groups.filter(pl.col("domain") == domain)
        counts = [int((g["memorized_at"] == c).sum()) for c in order]
        x = [steps[c] for c in order]
        width = 0.6 * (min(np.diff(x)) if len(x) > 1 else 1)
        ax.bar(x, counts, width=width, color="tab:blue", alpha=0.6, label="newly memorized samples")
        ax.bar(x, np.cumsum(counts), width=width, color="none", edgecolor="tab:blue", label="memorized so far")
        ax.set_xlabel("training step")
        ax.set_ylabel("samples (count)")
        acc_ax = ax.twinx()
        for task, a in accuracy.filter(pl.col("domain") == domain).group_by("task", maintain_order=True):
            a = a.sort("step_number")
            acc_ax.plot(a["step_number"], a["accuracy"], marker="o", label=f"{task[0]} accuracy")
        acc_ax.set_ylim(-0.02, 1.02)
        acc_ax.set_ylabel("benchmark accuracy (fraction)")
        ax.set_title(domain)
        _twin_legend(ax, acc_ax, fontsize=7)
    fig.suptitle("Memorization over checkpoints and benchmark accuracy (paper Fig. 1)")
    save(fig, png, pdf)


def _group_curves(monitors: pl.DataFrame, domain: str, column: str) -> list[tuple[str, pl.DataFrame]]:
    d = monitors.filter((pl.col("domain") == domain) & pl.col("group").str.starts_with(MEMORIZED_PREFIX))
    return [(str(g[0]), df.sort("step_number")) for g, df in d.group_by("group", maintain_order=True)]


def monitor_by_group(
    monitors: pl.DataFrame,
    steps: dict[str, int],
    column: str,
    ylabel: str,
    title: str,
    png: str,
    pdf: str,
    with_loss: bool = False,
    fit_after_t: bool = False,
) -> None:
    """Figs 4 and 6: a monitor per memorization group against the step, t* marked; optionally the
    group's training loss on a second axis and a linear trend fitted from t* on."""
    domains = monitors["domain"].unique(maintain_order=True).to_list()
    fig, axes = _panels(len(domains))
    colors = plt.get_cmap("viridis")
    for ax, domain in zip(axes, domains, strict=True):
        # in training order, so the colour map runs from the earliest t* to the latest: by name,
        # ids without zero padding (the paper's step5000, step125000) would not be
        curves = sorted(
            _group_curves(monitors, domain, column), key=lambda curve: steps[curve[0].removeprefix(MEMORIZED_PREFIX)]
        )
        # a group of one sample has no pair distance: nothing to draw, so no legend entry either
        curves = [(group, df) for group, df in curves if df[column].fill_nan(None).drop_nulls().len()]
        loss_ax = ax.twinx() if with_loss else None
        for k, (group, df) in enumerate(curves):
            color = colors(k / max(1, len(curves) - 1))
            t_star = steps[group.removeprefix(MEMORIZED_PREFIX)]
            ax.plot(
                df["step_number"],
                df[column],
                marker="o",
                markersize=3,
                color=color,
                label=f"{group} (n={df['n_samples'][0]})",
            )
            ax.axvline(t_star, color=color, linewidth=0.6, linestyle=":")
            after = df.filter(pl.col("step_number") >= t_star).drop_nulls(column)
            if fit_after_t and after.height >= 2:
                slope, icpt = np.polyfit(after["step_number"].to_numpy(), after[column].to_numpy(), 1)
                xs = after["step_number"].to_numpy()
                ax.plot(xs, slope * xs + icpt, color=color, linestyle="--", linewidth=1)
            if loss_ax is not None:
                loss_ax.plot(df["step_number"], df["mean_training_loss"], color=color, alpha=0.4, linestyle="-.")
        if loss_ax is not None:
            loss_ax.set_ylabel("group training loss (nats/token, dash-dot)")
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.set_title(domain)
        if curves:
            _legend_below(ax, fontsize=6)
        else:
            ax.text(0.5, 0.5, "no memorization groups", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title)
    save(fig, png, pdf)


def layerwise_distance(distance: pl.DataFrame, png: str, pdf: str) -> None:
    """Fig 5: per-layer pathway distance of all samples against the step, one panel per layer."""
    d = distance.filter(pl.col("layer").is_not_null() & (pl.col("group") == "all"))
    layers = sorted(d["layer"].unique().to_list())
    fig, axes = _panels(len(layers), width=3.2, height=3.0)
    if not layers:
        axes[0].text(0.5, 0.5, "no per-layer distances\n(distance.layerwise: false)", ha="center", va="center")
    for ax, layer in zip(axes[: len(layers)], layers, strict=True):
        for (domain,), df in d.filter(pl.col("layer") == layer).group_by("domain", maintain_order=True):
            df = df.sort("step_number")
            ax.plot(df["step_number"], df["mean_distance"], marker="o", markersize=3, label=str(domain))
        ax.set_title(f"layer {layer}")
        ax.set_xlabel("training step")
        ax.set_ylabel(f"mean edit distance ({_table_unit(d)})")
        ax.legend(fontsize=7)
    fig.suptitle("Layer-wise pathway distance, all samples (paper Fig. 5)")
    save(fig, png, pdf)


def accuracy_vs_monitors(
    joined: pl.DataFrame, monitors: dict[str, str], png: str, pdf: str, level: str = "char"
) -> None:
    """Fig 7: benchmark accuracy against each monitor across checkpoints, with a least-squares
    line and its MSE and R^2, one row per task; `level`: the pathway distance's (its unit)."""
    units = {**MONITOR_UNITS, "pathway_distance": distance_unit(level)}
    tasks = joined["task"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(len(tasks), len(monitors), figsize=(3.3 * len(monitors), 3.0 * len(tasks)), squeeze=False)
    for row, task in zip(axes, tasks, strict=True):
        d = joined.filter(pl.col("task") == task)
        for ax, (name, column) in zip(row, monitors.items(), strict=True):
            dd = d.drop_nulls(column).filter(pl.col(column).is_finite())
            x, y = dd[column].to_numpy(), dd["accuracy"].to_numpy()
            ax.scatter(x, y, c=dd["step_number"].to_numpy(), cmap="viridis", s=18)
            if len(x) >= 2 and np.ptp(x) > 0:
                slope, icpt = np.polyfit(x, y, 1)
                pred = slope * x + icpt
                mse = float(np.mean((y - pred) ** 2))
                r2 = 1 - float(np.sum((y - pred) ** 2) / max(np.sum((y - y.mean()) ** 2), 1e-12))
                xs = np.linspace(x.min(), x.max(), 20)
                ax.plot(xs, slope * xs + icpt, color="black", linewidth=1)
                ax.set_title(f"{task}\nMSE {mse:.3g}, R² {r2:.2f}", fontsize=8)
            else:
                ax.set_title(task, fontsize=8)
            ax.set_xlabel(f"{name.replace('_', ' ')} ({units.get(name, 'unitless')})")
            ax.set_ylabel("accuracy (fraction)")
    fig.suptitle("Benchmark accuracy vs each monitor, all checkpoints (colour: step) (paper Fig. 7)")
    save(fig, png, pdf)


def correlation_table(corr: pl.DataFrame, png: str, pdf: str) -> None:
    """Table 1 rendered: Pearson r and Spearman rho with their 95% bootstrap intervals."""
    rows = []
    for r in corr.iter_rows(named=True):
        rows.append(
            [
                r["task"],
                r["monitor"].replace("_", " "),
                f"{r['pearson_r']:.2f} [{r['pearson_ci_low']:.2f}, {r['pearson_ci_high']:.2f}]",
                f"{r['spearman_rho']:.2f} [{r['spearman_ci_low']:.2f}, {r['spearman_ci_high']:.2f}]",
                f"{r['pearson_p']:.2g}",
                str(r["n_checkpoints"]),
            ]
        )
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.2))
    ax.axis("off")
    table = ax.table(
        cellText=rows or [["-"] * 6],
        colLabels=["benchmark", "monitor", "Pearson r [95% CI]", "Spearman rho [95% CI]", "Pearson p", "n ckpts"],
        loc="center",
        cellLoc="left",
        colWidths=[0.2, 0.2, 0.2, 0.22, 0.1, 0.08],
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.25)
    ax.set_title("Accuracy vs monitors over the rise window (paper Table 1)")
    save(fig, png, pdf, layout=False)


def local_grokking(
    matches: pl.DataFrame, monitors: pl.DataFrame, test_acc: pl.DataFrame, png: str, pdf: str, max_pairs: int = 8
) -> None:
    """Fig 2: for the matched pairs with the most members (at most `max_pairs`), the memorization
    group's training loss and the matched test group's accuracy against the step, the delay
    t# - t* shaded."""
    pairs = list(
        matches.with_columns(size=pl.min_horizontal("n_train", "n_test"))
        .sort(["size", "similarity"], descending=True)
        .head(max_pairs)
        .iter_rows(named=True)
    )
    n_cols = min(4, max(1, len(pairs)))
    n_rows = max(1, -(-len(pairs) // n_cols))
    fig, grid = plt.subplots(n_rows, n_cols, figsize=(4.6 * n_cols, 3.4 * n_rows), squeeze=False)
    axes = list(grid.flat)
    for ax, p in zip(axes, pairs, strict=False):
        g = monitors.filter((pl.col("domain") == p["domain"]) & (pl.col("group") == p["train_group"])).sort(
            "step_number"
        )
        ax.plot(
            g["step_number"],
            g["mean_training_loss"],
            color="tab:blue",
            marker="o",
            markersize=3,
            label=f"{p['train_group']} loss (n={p['n_train']})",
        )
        ax.set_xlabel("training step")
        ax.set_ylabel("training loss (nats/token)")
        acc_ax = ax.twinx()
        t = test_acc.filter((pl.col("task") == p["task"]) & (pl.col("test_group") == p["test_group"])).sort(
            "step_number"
        )
        acc_ax.plot(
            t["step_number"],
            t["accuracy"],
            color="tab:red",
            marker="s",
            markersize=3,
            label=f"{p['test_group']} accuracy (n={p['n_test']})",
        )
        acc_ax.set_ylim(-0.02, 1.02)
        acc_ax.set_ylabel("test-group accuracy (fraction)")
        ax.axvspan(min(p["train_step"], p["test_step"]), max(p["train_step"], p["test_step"]), color="gray", alpha=0.15)
        ax.set_title(f"{p['task']}: delay {p['delay']} steps (similarity {p['similarity']:.2f})", fontsize=8)
        _twin_legend(ax, acc_ax, fontsize=6)
    for ax in axes[len(pairs) :]:
        ax.axis("off")
    if not pairs:
        axes[0].text(0.5, 0.5, "no matched groups", ha="center", va="center", transform=axes[0].transAxes)
    fig.suptitle(
        f"Local grokking: memorization-group loss vs matched test-group accuracy, {len(pairs)} of {matches.height} "
        "pairs with the most members (paper Fig. 2)"
    )
    save(fig, png, pdf)


def tau_ablation(ablation: pl.DataFrame, png: str, pdf: str) -> None:
    """Fig 9: mean pathway distance of all samples against the step, one line per tau."""
    d = ablation.filter((pl.col("group") == "all") & pl.col("layer").is_null())
    domains = d["domain"].unique(maintain_order=True).to_list()
    fig, axes = _panels(len(domains))
    for ax, domain in zip(axes, domains, strict=True):
        for (tau,), df in d.filter(pl.col("domain") == domain).sort("tau").group_by("tau", maintain_order=True):
            df = df.sort("step_number")
            ax.plot(df["step_number"], df["mean_distance"], marker="o", markersize=3, label=f"tau = {tau:g}")
        ax.set_xlabel("training step")
        ax.set_ylabel(f"mean pathway edit distance ({_table_unit(d)})")
        ax.set_title(domain)
        ax.legend(fontsize=7)
    fig.suptitle("Pathway distance at each threshold tau, all samples (paper Fig. 9)")
    save(fig, png, pdf)


def memorization_ablation(ablation: pl.DataFrame, parameter: str, png: str, pdf: str) -> None:
    """Figs 10 and 11: mean pathway distance among the samples memorized before the last
    checkpoint against the step, one line per eps (as a factor of the domain's chosen eps) or
    per delta; the legend says how many samples each value memorizes."""
    domains = ablation["domain"].unique(maintain_order=True).to_list()
    fig, axes = _panels(len(domains))
    for ax, domain in zip(axes, domains, strict=True):
        d = ablation.filter(pl.col("domain") == domain)
        for (value,), df in d.sort("value").group_by("value", maintain_order=True):
            df = df.sort("step_number")
            what = f"eps = {value:g} x {df['eps'][0] / value:.2g}" if parameter == "eps" else f"delta = {value:g}"
            ax.plot(
                df["step_number"],
                df["mean_distance"],
                marker="o",
                markersize=3,
                label=f"{what} ({df['n_memorized'][0]} samples)",
            )
        if d["mean_distance"].drop_nulls().is_empty():
            ax.text(
                0.5,
                0.5,
                "fewer than 2 samples memorized\nbefore the last checkpoint",
                ha="center",
                transform=ax.transAxes,
            )
        ax.set_xlabel("training step")
        ax.set_ylabel(f"mean pathway edit distance ({_table_unit(d)})")
        ax.set_title(domain)
        ax.legend(fontsize=7)
    figure = "10" if parameter == "eps" else "11"
    fig.suptitle(
        f"Pathway distance of the samples memorized before the last checkpoint, by {parameter} (paper Fig. {figure})"
    )
    save(fig, png, pdf)


def distance_unit(level: str) -> str:
    """The unit of a pathway edit distance at `distance.level` (a table's `level` column)."""
    return "characters" if level == "char" else "expert ids"


def _table_unit(table: pl.DataFrame) -> str:
    return distance_unit(table["level"][0]) if table.height else "characters"


def cross_domain(cross: pl.DataFrame, within: pl.DataFrame, png: str, pdf: str) -> None:
    """Fig 12: the mean distance between two domains' samples against the step, next to each
    domain's own mean distance (all its samples): a drop within a domain that the cross-domain
    distance does not share is specific to that domain, not a collapse of routing everywhere."""
    pairs = cross.select("domain_a", "domain_b").unique(maintain_order=True).rows()
    fig, axes = _panels(len(pairs))
    for ax, (a, b) in zip(axes, pairs, strict=True):
        d = cross.filter((pl.col("domain_a") == a) & (pl.col("domain_b") == b)).sort("step_number")
        ax.plot(d["step_number"], d["mean_distance"], color="black", marker="o", markersize=3, label=f"{a} x {b}")
        for domain, color in ((a, "tab:blue"), (b, "tab:orange")):
            w = within.filter(pl.col("domain") == domain).sort("step_number")
            ax.plot(w["step_number"], w["mean_distance"], color=color, linestyle="--", label=f"within {domain}")
        ax.set_xlabel("training step")
        ax.set_ylabel(f"mean pathway edit distance ({_table_unit(d)})")
        ax.set_title(f"{a} x {b}")
        ax.legend(fontsize=7)
    fig.suptitle("Cross-domain control: distance between domains vs within each (paper Fig. 12)")
    save(fig, png, pdf)


def distance_vs_entropy(table: pl.DataFrame, png: str, pdf: str) -> None:
    """Fig 13: per sample, routing entropy against mean pathway distance to the others of its
    domain, as a hexbin, with Pearson r: how much of the distance routing spread alone explains."""
    from scipy import stats

    domains = table["domain"].unique(maintain_order=True).to_list()
    fig, axes = _panels(len(domains))
    for ax, domain in zip(axes, domains, strict=True):
        d = table.filter((pl.col("domain") == domain) & pl.col("mean_distance").is_not_nan())
        x, y = d["routing_entropy"].to_numpy(), d["mean_distance"].to_numpy()
        cells = ax.hexbin(x, y, gridsize=25, mincnt=1, cmap="viridis")
        bar = fig.colorbar(cells, ax=ax, label="samples per cell")
        bar.locator = matplotlib.ticker.MaxNLocator(integer=True)
        bar.update_ticks()
        varied = len(x) > 2 and np.ptp(x) > 0 and np.ptp(y) > 0
        r = f"r = {stats.pearsonr(x, y).statistic:.2f}" if varied else "r undefined"
        ax.set_title(f"{domain}, {d['step'][0]}: {r} (n = {len(x)})")
        ax.set_xlabel("routing entropy, mean over MoE layers (nats)")
        ax.set_ylabel(f"mean distance to other samples ({_table_unit(d)})")
    fig.suptitle("Pathway distance vs routing entropy per sample (paper Fig. 13)")
    save(fig, png, pdf)


def live_monitors(live: pl.DataFrame, traj: pl.DataFrame, png: str, pdf: str) -> None:
    """The monitors measured while the tiny series trained, at the steps held-out accuracy was
    measured: pathway distance (top) and consistency (bottom) per domain, accuracy on a second axis."""
    domains = live["domain"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(2, max(len(domains), 1), figsize=(5.0 * max(len(domains), 1), 6.6), squeeze=False)
    for col, domain in enumerate(domains):
        d = live.filter(pl.col("domain") == domain).sort("step")
        t = traj.filter(pl.col("domain") == domain).sort("step")
        for row, (column, label, color) in enumerate(
            (
                ("pathway_distance", "pathway distance (edit operations)", "tab:purple"),
                ("pathway_consistency", "pathway consistency", "tab:green"),
            )
        ):
            ax = axes[row][col]
            ax.plot(d["step"], d[column], color=color, marker=".", markersize=3, label=label)
            ax.set_xlabel("training step")
            ax.set_ylabel(label)
            acc = ax.twinx()
            acc.plot(t["step"], t["test_accuracy"], color="tab:red", linestyle="--", label="held-out accuracy")
            acc.plot(t["step"], t["train_accuracy"], color="tab:blue", linestyle=":", label="train accuracy")
            acc.set_ylim(-0.02, 1.02)
            acc.set_ylabel("accuracy (fraction correct)")
            if row == 0:
                ax.set_title(f"{domain} ({d['n_samples'][0]} fixed training samples)")
            _twin_legend(ax, acc, fontsize=7)
    fig.suptitle("Monitors measured during pretraining (grokpath.monitor), every few steps")
    save(fig, png, pdf)
