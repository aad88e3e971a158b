"""The daemon's clock, which tests can stop and move forward, as Open vSwitch's timeval.

Every time the daemon uses -- rule timeouts, MAC aging, megaflow idle
expiry, the ages and durations commands print, the statistics interval --
comes from one :class:`Clock`. ``time/stop`` freezes it and ``time/warp``
moves it forward, so a test can see what happens after five minutes without
waiting five minutes. Wall-clock time (log timestamps, capture timestamps)
is not affected, as in Open vSwitch.

``time/warp [LARGE_MSECS] MSECS`` advances by MSECS; with LARGE_MSECS it
advances by LARGE_MSECS in steps of MSECS (the last step may be shorter), and
the daemon does its periodic work after every step, so timers fire in order
and every effect is visible to the next command. The reply is ``warped``
once the last step is done. Arguments are read as C's ``atoll()`` reads them
(``10abc`` is 10), as Open vSwitch does.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING

from pyvswitch.vswitchd.unixctl import UnixctlError

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyvswitch.vswitchd.unixctl import UnixctlServer

#: The most steps one ``time/warp`` may take: each step runs the daemon's
#: periodic work, so a warp of a year in 1 ms steps would never finish.
MAX_WARP_STEPS = 100_000


class Clock:
    """Monotonic seconds, which :meth:`stop` freezes and :meth:`advance` moves forward."""

    def __init__(self, source: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._stopped_at: float | None = None
        self._warp = 0.0
        #: True while a ``time/warp`` is stepping (a second one is refused).
        self.warping = False

    def __call__(self) -> float:
        base = self._source() if self._stopped_at is None else self._stopped_at
        return base + self._warp

    @property
    def stopped(self) -> bool:
        return self._stopped_at is not None

    def stop(self) -> None:
        """Freeze the clock (only ``time/warp`` moves it from now on)."""
        if self._stopped_at is None:
            self._stopped_at = self._source()

    def advance(self, msecs: int) -> None:
        """Move the clock ``msecs`` milliseconds forward."""
        self._warp += msecs / 1000


def atoll(text: str) -> int:
    """C's ``atoll()``: leading blanks, a sign and digits; anything else ends the number."""
    found = re.match(r"[ \t\n\r\f\v]*([+-]?\d+)", text)
    return int(found.group(1)) if found else 0


def warp_steps(args: list[str]) -> list[int]:
    """The steps (ms) of ``time/warp [LARGE_MSECS] MSECS``, as Open vSwitch takes them.

    Raises ValueError with Open vSwitch's message for a bad argument.
    """
    total = atoll(args[0]) if len(args) > 1 else 0
    step = atoll(args[-1])
    if step <= 0 or total < 0:
        raise ValueError("invalid MSECS")
    if total == 0:
        return [step]
    count, rest = divmod(total, step)
    if count + (rest > 0) > MAX_WARP_STEPS:
        raise ValueError(
            f"{total} ms in steps of {step} ms is more than {MAX_WARP_STEPS} steps; "
            "use larger steps"
        )
    return [step] * count + ([rest] if rest else [])


def register_timeval_commands(
    server: UnixctlServer, clock: Clock, run_once: Callable[[], None]
) -> None:
    """``time/stop`` and ``time/warp``; ``run_once`` is the daemon's periodic work."""
    server.register("time/stop", "", 0, 0, lambda _args: _stop(clock))
    server.register(
        "time/warp", "[large_msecs] msecs", 1, 2, lambda args: _warp(clock, run_once, args)
    )


def _stop(clock: Clock) -> str:
    clock.stop()
    return ""


async def _warp(clock: Clock, run_once: Callable[[], None], args: list[str]) -> str:
    try:
        steps = warp_steps(args)
    except ValueError as exc:
        raise UnixctlError(str(exc)) from None
    if clock.warping:
        raise UnixctlError("A previous warp in progress")
    clock.warping = True
    try:
        for step in steps:
            clock.advance(step)
            run_once()
            # Between steps the daemon serves its sockets and devices, as
            # Open vSwitch runs its main loop once per step.
            await asyncio.sleep(0)
    finally:
        clock.warping = False
    return "warped"
