"""Rule names several workflow tests expect, in one place."""

# Figure rules that read the monitors table (and so rerun whenever it changes).
FIGURES_ON_MONITORS = (
    "plot_distance_groups",
    "plot_consistency_groups",
    "plot_layerwise_distance",
    "plot_local_grokking",
    "plot_accuracy_vs_monitors",
    "plot_correlation_table",
    "plot_cross_domain",
)
