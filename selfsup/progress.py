"""Progress bars and stage logs of long operations.

A bar (tqdm) shows while an operation runs, on a terminal only: not when stderr is a file or
a pipe, and not with ``--quiet`` (``set_quiet``) or ``SELFSUP_QUIET=1``. Stages ("decoding
2,000 images", "evaluating the random-weights baseline") are logged through the
``selfsup`` logger, which the command line shows on a terminal (``configure_logging``).
Below every layer, so that data loading, evaluation and the tasks can all use it; tqdm is
imported only when a bar is made.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("selfsup")
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def quiet() -> bool:
    return _quiet or os.environ.get("SELFSUP_QUIET", "") not in ("", "0")


def interactive() -> bool:
    """Whether bars and stage logs show: stderr is a terminal and nothing asked for quiet."""
    return not quiet() and sys.stderr.isatty()


def bar(iterable=None, total: int | None = None, desc: str = "", unit: str = "it"):
    """``iterable`` wrapped in a progress bar that shows only when ``interactive()``;
    also usable by hand (``with bar(total=n) as b: b.update(k)``)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not interactive(), leave=False,
                dynamic_ncols=True, file=sys.stderr)


def stage(message: str, *args) -> None:
    """Log the start of a stage of a long operation (``logging`` style arguments)."""
    log.info(message, *args)


def configure_logging() -> None:
    """The command line's logging: the ``selfsup`` stages on stderr as ``selfsup: ...`` lines
    when ``interactive()`` (or with ``SELFSUP_LOG=info``), warnings and errors only otherwise."""
    wanted = os.environ.get("SELFSUP_LOG", "").upper()
    level = getattr(logging, wanted, None) if wanted else (logging.INFO if interactive() else logging.WARNING)
    if log.handlers:
        log.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("selfsup: %(message)s"))
    log.addHandler(handler)
    log.setLevel(level if isinstance(level, int) else logging.WARNING)
    log.propagate = False
