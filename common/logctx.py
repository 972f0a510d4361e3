"""Log context: every line logged while a task runs carries its task name and run id."""
from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Iterator

_context: contextvars.ContextVar[dict] = contextvars.ContextVar("payready_log_context", default={})

FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s [%(log_context)s] %(message)s"


@contextlib.contextmanager
def bind(**values: object) -> Iterator[None]:
    token = _context.set({**_context.get(), **{k: v for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.log_context = " ".join(f"{k}={v}" for k, v in _context.get().items()) or "-"
        return True


def install(logger: logging.Logger) -> None:
    """Add the context to every handler of ``logger`` (Celery's logging signals call this)."""
    for handler in logger.handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
            handler.setFormatter(logging.Formatter(FORMAT))
