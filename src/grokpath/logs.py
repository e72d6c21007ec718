"""Route a stage's logging and progress bars into its rule log."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def logged(log_path: str | Path, level: int = logging.INFO, *, pandas: bool = True) -> Iterator[None]:
    """Send logging and stderr (tqdm writes there) to `log_path` for the duration of the block.

    pandas=False: the job hands pyarrow no pandas objects (no lm-eval, no HF datasets), so
    pyarrow need not import pandas to check for them (`tables.skip_pandas_probe`)."""
    if not pandas:
        from grokpath.tables import skip_pandas_probe

        skip_pandas_probe()
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as fh, contextlib.redirect_stderr(fh):
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        old_level = root.level
        root.setLevel(level)
        try:
            yield
        except BaseException:
            logging.getLogger("grokpath").exception("stage failed")
            raise
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)
            sys.stderr.flush()
