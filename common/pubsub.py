"""A per-process Redis channel subscription in a daemon thread, for caches that drop entries when
another process announces a change (cached timelines, API keys).

While subscribed, a cache may trust what it holds; when the subscription is lost it must fall back
to checking (``listening`` is cleared), and when it is (re)established every message sent before
is missed, so ``on_subscribed`` runs first (caches drop what they hold).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Optional

import redis

log = logging.getLogger("payready.pubsub")


class Subscriber:
    """Starts on first :meth:`ensure_started` in each process (gunicorn forks after import)."""

    def __init__(self, client: redis.Redis, channel: str, on_message: Callable[[str], None],
                 on_subscribed: Callable[[], None], name: str):
        self.client, self.channel, self.name = client, channel, name
        self.on_message, self.on_subscribed = on_message, on_subscribed
        self.listening = threading.Event()
        self._pid: Optional[int] = None

    def ensure_started(self) -> None:
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()  # a forked process starts its own
        self.listening = threading.Event()
        threading.Thread(target=self._loop, name=self.name, daemon=True).start()

    def _loop(self) -> None:
        failing = False
        while True:
            pubsub = self.client.pubsub()
            try:
                pubsub.subscribe(self.channel)
                while True:
                    # polled, so the client's socket timeout never reads a quiet channel as lost
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.on_subscribed()
                        self.listening.set()
                        failing = False
                    elif message["type"] == "message":
                        data = message["data"]
                        self.on_message(data.decode() if isinstance(data, bytes) else data)
            except Exception as exc:  # noqa: BLE001 - the cache falls back to checking on its own
                self.listening.clear()
                if not failing:
                    log.warning("%s: channel %s lost, falling back until it is back: %s", self.name, self.channel, exc)
                failing = True
                pubsub.close()
                time.sleep(1)
