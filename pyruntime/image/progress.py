"""The progress display of `image pull` / `image push`: one line per blob, bytes and rate.

Only on a terminal (the verb decides): a script reading stdout gets the image name and
nothing else.  Redrawn at most five times a second, in place (cursor up, erase line).
"""

from __future__ import annotations

import threading
import time
from typing import TextIO


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


class Progress:
    """Callable as ``progress(digest, done, total)`` from any thread."""

    def __init__(self, out: TextIO, verb: str = "pulling") -> None:
        self.out = out
        self.verb = verb
        self.lock = threading.Lock()
        self.rows: dict[str, list[float]] = {}  # digest -> [done, total, start, end]
        self.drawn = 0
        self.last = 0.0

    def __call__(self, digest: str, done: int, total: int | None) -> None:
        with self.lock:
            now = time.monotonic()
            row = self.rows.setdefault(digest, [0, 0, now, 0.0])
            row[0], row[1] = done, total or 0
            if total and done >= total and not row[3]:
                row[3] = now  # the rate of a finished blob stays as it was
            if now - self.last >= 0.2 or done == total:
                self.last = now
                self._draw(now)

    def note(self, digest: str, text: str) -> None:
        """A row that needs no transfer (e.g. "already stored")."""
        with self.lock:
            self.rows[digest] = [-1, 0, 0.0, 0.0]
            self._texts = getattr(self, "_texts", {})
            self._texts[digest] = text
            self._draw(time.monotonic())

    def _draw(self, now: float) -> None:
        lines = []
        texts = getattr(self, "_texts", {})
        for digest, (done, total, start, end) in self.rows.items():
            short = digest.partition(":")[2][:12]
            if done < 0:
                lines.append(f"{short}  {texts.get(digest, '')}")
                continue
            rate = done / max((end or now) - start, 1e-3)
            state = "done" if total and done >= total else self.verb
            lines.append(f"{short}  {state:8} {human(done):>9} / {human(total):>9}"
                         f"  {human(rate)}/s")
        buf = "\x1b[1A\x1b[2K" * self.drawn + "".join(line + "\n" for line in lines)
        self.drawn = len(lines)
        self.out.write(buf)
        self.out.flush()

    def finish(self) -> None:
        with self.lock:
            if self.rows:
                self._draw(time.monotonic())
