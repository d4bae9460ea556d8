"""The event loop ktools runs its own async work on: uvloop when it is installed.

ktools owns the loops of its blocking entry points — `run_generation` (every
generation run: notebook, CLI, `QAGenerator`) and the synchronous `TeacherClient.chat`
— and makes them here. uvloop (libuv, in C) runs the same asyncio code with less CPU
per teacher request than the standard loop: 10–20 % less in bench/generation.py on
this shared 2-core machine (A/B runs alternating the two loops; the loop's own
bookkeeping, socket calls and timers are the difference).

`KTOOLS_EVENT_LOOP=asyncio` selects the standard loop (e.g. to compare, or on a
platform without uvloop); `uvloop` requires it; `auto` (default) uses it when present.
Coroutines awaited from a loop someone else runs (Jupyter's, `asyncio.run`) stay on
that loop.
"""

from __future__ import annotations

import asyncio

from ktools.config import ConfigError, setting

ENV_VAR = "KTOOLS_EVENT_LOOP"
CHOICES = ("auto", "uvloop", "asyncio")


def _choice() -> str:
    return setting("event_loop")  # KTOOLS_EVENT_LOOP, declared in ktools.config


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when installed (and not turned off), else asyncio's."""
    choice = _choice()
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigError(f"{ENV_VAR}=uvloop but uvloop is not installed: pip install uvloop") from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def loop_kind(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """'uvloop' or 'asyncio': which implementation `loop` (default: the running one) is."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
