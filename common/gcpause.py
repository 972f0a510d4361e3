"""The automatic cyclic garbage collector paused for a bulk step, and restored after it.

A step that keeps ~100k rows alive while it allocates millions of small acyclic values (keys,
tuples, records, JSON rows) makes the automatic collector walk every live row again and again:
a third of a resolve run at 100k identities, a quarter of the ingest's CPU. Such values are freed
by reference counting; the few cycles are collected when the collector runs again.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def paused() -> Iterator[None]:
    """Automatic collection off inside; restored after, also on error. A caller that had it off keeps it off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
