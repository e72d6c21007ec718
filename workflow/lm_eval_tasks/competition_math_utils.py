"""lm-eval hooks of grokpath_competition_math: the ones of lm-eval's hendrycks_math tasks, and its
prompt and target as functions rather than Jinja templates, which lm-eval compiles anew for every
document it renders (12,500 problems, a prompt and a target each)."""

from lm_eval.tasks.hendrycks_math.utils import process_docs, process_results

__all__ = ["doc_to_target", "doc_to_text", "process_docs", "process_results"]


def doc_to_text(doc: dict) -> str:
    """hendrycks_math's "Problem: {{problem}}\\nAnswer:"."""
    return f"Problem: {doc['problem']}\nAnswer:"


def doc_to_target(doc: dict) -> str:
    """hendrycks_math's "{{answer}}" (`process_docs`' last boxed answer; str() as Jinja renders it)."""
    return str(doc["answer"])
