"""grokpath: monitor memorization-to-generalization in MoE pretraining checkpoints (arXiv 2506.21551)."""

__version__ = "0.1.0"
