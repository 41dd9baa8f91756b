"""What the benchmark scripts share: the repository's paths, the timing harness (a clock for
wall-clock and CPU seconds, a loop that repeats a step for a while), and the writer of their
Markdown tables and result files. The package never imports
this; grids of training runs are the library's :func:`metazoo.analysis.grid.run_grid`, and the
time and memory of one computation are :mod:`metazoo.analysis.cost`.

Importing it puts the repository first on ``sys.path``, so that a script run as ``python
benchmarks/NAME.py`` uses this checkout's ``metazoo`` (and ``bench.py`` the tests' plain
reference implementation, ``tests/reference.py``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class Clock:
    """Wall-clock and CPU seconds (all threads of this process) of a ``with`` block, or so
    far inside it."""

    def __enter__(self):
        self.began_wall, self.began_cpu = time.perf_counter(), time.process_time()
        self.ended: tuple[float, float] | None = None
        return self

    def __exit__(self, *exc) -> None:
        self.ended = (time.perf_counter(), time.process_time())

    @property
    def wall(self) -> float:
        now = self.ended[0] if self.ended else time.perf_counter()
        return now - self.began_wall

    @property
    def cpu(self) -> float:
        now = self.ended[1] if self.ended else time.process_time()
        return now - self.began_cpu


def repeat_for(step: Callable[[], object], seconds: float) -> tuple[int, Clock]:
    """Call ``step`` once to warm up, then back to back for about ``seconds`` (at least once);
    returns how many calls were timed and their clock."""
    step()
    count = 0
    with Clock() as clock:
        while count == 0 or clock.wall < seconds:
            step()
            count += 1
    return count, clock


def table(header: Sequence[str], rows: Sequence[Sequence[object]],
          align: str | None = None) -> list[str]:
    """A Markdown table's lines. ``align``: one letter per column, ``l`` or ``r`` (default:
    the first column left, the others right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = "|" + "".join("---|" if a == "l" else "---:|" for a in align)
    return (["| " + " | ".join(header) + " |", rule]
            + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def command(script: str) -> str:
    """The command line that ran ``script``, for the report it writes."""
    return " ".join(["python", f"benchmarks/{script}", *sys.argv[1:]])


#: The line after which a results file holds a hand-written reading, kept when it is written
#: again.
HAND_WRITTEN = "<!-- hand-written below: kept when the tables above are regenerated -->"


def write_results(stem: Path, lines: Sequence[str], data: object | None = None,
                  indent: int = 2) -> None:
    """``stem.md`` (the lines, then whatever the file held from :data:`HAND_WRITTEN` on)
    and, given ``data``, ``stem.json``; print the Markdown."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    markdown = stem.with_suffix(".md")
    kept = markdown.read_text().partition(HAND_WRITTEN) if markdown.is_file() else ("", "", "")
    markdown.write_text(text + ("\n" + "".join(kept[1:]) if kept[1] else ""))
    if data is not None:
        stem.with_suffix(".json").write_text(json.dumps(data, indent=indent) + "\n")
    print(text)
