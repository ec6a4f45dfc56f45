"""A fake clock for code that takes its "now" as a callable (clock_ms=, now_ms=): time moves only
when the test moves it."""
from __future__ import annotations

T0_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z


class FakeClock:
    """Milliseconds since the epoch, as app.core.clock.now_ms gives them; call it, or read `ms`."""

    def __init__(self, start_ms: int = T0_MS):
        self.ms = start_ms

    def __call__(self) -> int:
        return self.ms

    now_ms = __call__

    def advance(self, seconds: float) -> int:
        """Move forward by `seconds` (rounded to the millisecond); returns the new time."""
        return self.advance_ms(round(seconds * 1000))

    def advance_ms(self, ms: int) -> int:
        self.ms += ms
        return self.ms
