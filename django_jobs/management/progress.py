"""Progress bars for the ``jobs`` command's bulk changes, on a terminal only.

Off a terminal (a pipe, a CI log, a script) nothing is drawn and a bulk change stays one
statement; on one, it is applied in batches of ``BATCH`` rows, the bar redrawn after each.
A CI job that gives commands a pseudo-terminal still gets no bar (``CI`` set, or ``TERM=dumb``).
"""

import os
from collections.abc import Callable

#: Rows per statement while a bar is shown; fewer rows than this draw no bar.
BATCH = 1000
WIDTH = 30


def in_batches(rows, change: Callable, stream, verb: str, batch: int = BATCH) -> int:
    """``change(rows)`` and its count; on a terminal with more than ``batch`` rows, in
    batches of ``batch`` ids with a bar on ``stream``."""
    if not drawing(stream):
        return change(rows)
    ids = list(rows.values_list("pk", flat=True))
    if len(ids) <= batch:
        return change(rows)
    done = 0
    for start in range(0, len(ids), batch):
        done += change(rows.filter(pk__in=ids[start : start + batch]))
        draw(stream, verb, min(start + batch, len(ids)), len(ids))
    stream.write("")  # end the bar's line
    return done


def drawing(stream) -> bool:
    """Whether ``stream`` is a terminal someone watches (not a CI job's)."""
    return stream.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"


def draw(stream, verb: str, seen: int, total: int) -> None:
    filled = WIDTH * seen // total
    bar = "#" * filled + "-" * (WIDTH - filled)
    stream.write(f"\r{verb} [{bar}] {seen}/{total}", ending="")
    stream.flush()
