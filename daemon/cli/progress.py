"""Progress bars for the commands that take a while (stock import, benches, drift checks).

They use ``rich`` (its ``Progress`` redraws from a thread of its own, so an asyncio command only
tells it how far it got) and are drawn on stderr, only when stderr is a terminal: stdout stays
the command's result, and a script or a test that reads the output sees no bars. Each bar is
transient: it disappears when the work is done, leaving the command's summary line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["bar", "interactive", "polled", "say", "timed"]

#: How often ``polled`` and ``timed`` look at how far the work got (seconds).
POLL_S = 0.2


def _stderr() -> Console:
    return Console(stderr=True)


def interactive() -> bool:
    """Whether a person is watching stderr (a terminal): only then are bars drawn."""
    return _stderr().is_terminal


def say(text: str) -> None:
    """One line of what is happening, on stderr, for a person at a terminal only."""
    console = _stderr()
    if console.is_terminal:
        console.print(text, highlight=False, markup=False)


def _progress(console: Console, counted: bool) -> Progress:
    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
    if counted:
        columns.append(MofNCompleteColumn())
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=console, transient=True)


@contextlib.contextmanager
def bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A bar of ``total`` steps; yields ``advance(n)``. Nothing is drawn off a terminal."""
    console = _stderr()
    if not console.is_terminal:
        yield lambda _n: None
        return
    with _progress(console, counted=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


@contextlib.asynccontextmanager
async def polled(
    description: str, total: int, done: Callable[[], int], *, counted: bool = True
) -> AsyncIterator[None]:
    """A bar of ``total`` steps that reads ``done()`` every POLL_S while the block runs (for
    work too fast to report each step, like a benchmark's many calls); ``counted`` shows
    "done/total"."""
    console = _stderr()
    if not console.is_terminal:
        yield
        return
    with _progress(console, counted=counted) as progress:
        task = progress.add_task(description, total=total)

        async def poll() -> None:
            while True:
                progress.update(task, completed=done())
                await asyncio.sleep(POLL_S)

        poller = asyncio.create_task(poll())
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller


@contextlib.asynccontextmanager
async def timed(description: str, seconds: float) -> AsyncIterator[None]:
    """A bar that fills over ``seconds`` of waiting (a wait whose length is known in advance,
    like a drift check's second look); it stays full if the block runs longer."""
    started = time.monotonic()
    tenths = max(1, round(seconds * 10))
    async with polled(description, tenths, lambda: _tenths(started), counted=False):
        yield


def _tenths(started: float) -> int:
    return int((time.monotonic() - started) * 10)
