"""Log lines carry the bound task context, and nothing leaks out of the block."""
from __future__ import annotations

import io
import logging

from common import logctx


def test_bound_context_appears_in_lines_and_is_reset_after():
    stream = io.StringIO()
    logger = logging.getLogger("payready.test.logctx")
    logger.handlers = [logging.StreamHandler(stream)]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logctx.install(logger)
    with logctx.bind(task="process_source", run="r-1", source=None):
        logger.info("inside")
        with logctx.bind(source="gong"):
            logger.info("nested")
    logger.info("outside")
    lines = stream.getvalue().splitlines()
    assert "[task=process_source run=r-1] inside" in lines[0]
    assert "[task=process_source run=r-1 source=gong] nested" in lines[1]
    assert "[-] outside" in lines[2]
