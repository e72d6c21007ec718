"""lm-eval hooks of grokpath_competition_math: the ones of lm-eval's hendrycks_math tasks."""

from lm_eval.tasks.hendrycks_math.utils import process_docs, process_results

__all__ = ["process_docs", "process_results"]
