"""Terminal output for `tl-mcp demo`: step headers, progress bars, status lines and streamed text.

On a terminal, bars redraw in place; anywhere else (a pipe, CI, a test), every line is printed once and
bars only at quarter marks, so a log of the demo stays short and readable.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

BAR_WIDTH = 28
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class Console:
    def __init__(self, out: TextIO | None = None, *, live: bool | None = None) -> None:
        self.out = out or sys.stdout
        isatty = getattr(self.out, "isatty", None)
        self.live = bool(isatty and isatty()) if live is None else live
        self._open_line = False
        self._last_quarter = -1
        self._spin = 0
        self.step_started = time.monotonic()

    # ------------------------------------------------------------------ plain lines

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def end_line(self) -> None:
        """Finish a bar or streamed text in progress, so the next output starts on a fresh line."""
        if self._open_line:
            self._write("\n")
            self._open_line = False

    def line(self, text: str = "") -> None:
        self.end_line()
        self._write(text + "\n")

    def info(self, label: str, value: object) -> None:
        self.line(f"  {label + ':':<18} {value}")

    def step(self, number: int, total: int, title: str) -> None:
        self.end_line()
        self.step_started = time.monotonic()
        self._last_quarter = -1
        self._write(f"\n[{number}/{total}] {title}\n")

    def done(self, summary: str = "done") -> None:
        self.line(f"  ✓ {summary} ({time.monotonic() - self.step_started:.1f} s)")

    # ------------------------------------------------------------------ progress

    def bar(self, done: float, total: float, label: str) -> None:
        """A determinate bar, e.g. bytes uploaded out of the file size."""
        frac = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
        filled = round(frac * BAR_WIDTH)
        text = f"  [{'█' * filled}{'░' * (BAR_WIDTH - filled)}] {frac:4.0%}  {label}"
        if self.live:
            self._redraw(text)
            return
        quarter = int(frac * 4)
        if quarter > self._last_quarter:
            self._last_quarter = quarter
            self.line(text)

    def activity(self, label: str, *, changed: bool) -> None:
        """An indeterminate bar for waits whose total is unknown: a spinner and the time waited so far."""
        elapsed = time.monotonic() - self.step_started
        if self.live:
            if changed:
                # Keep each status on its own line; only the spinner and the clock redraw in place.
                self.end_line()
            self._spin = (self._spin + 1) % len(_SPINNER)
            self._redraw(f"  {_SPINNER[self._spin]} {elapsed:5.1f} s  {label}")
        elif changed:
            self.line(f"  … {elapsed:5.1f} s  {label}")

    def _redraw(self, text: str) -> None:
        width = max(shutil.get_terminal_size((100, 20)).columns - 1, 20)
        self._write("\r" + text[:width].ljust(width))
        self._open_line = True

    # ------------------------------------------------------------------ streamed text

    def stream(self, text: str) -> None:
        """Append answer text as it arrives, each line behind a margin; `end_line` closes it."""
        for i, part in enumerate(text.split("\n")):
            if i:
                # Hold a newline back until more text comes, so an answer ending in one leaves no stub.
                self._write("\n")
                self._open_line = False
            if part:
                if not self._open_line:
                    self._write("  │ ")
                    self._open_line = True
                self._write(part)
