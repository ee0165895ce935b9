"""Rate limits as the emulator applies them: a token bucket, and Descope's published window shape."""

from __future__ import annotations

import threading
import time
from collections import deque

from reconcile.emulator.config import Window


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._at = burst, time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one will be there."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate


class WindowLimit:
    """At most `count` admitted requests in any `seconds`-long stretch (a sliding window).

    The request that finds the window full starts a block of `block` seconds in which every
    request is refused; refused requests are not counted. With block 0 a refused caller only
    waits until the oldest admitted request leaves the window.
    """

    def __init__(self, window: Window) -> None:
        self.window = window
        self.blocks = 0  # blocks started: for /_emulator/stats
        self._admitted: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 when the request is admitted, else the seconds until requests pass again."""
        with self._lock:
            now = time.monotonic()
            if now < self._blocked_until:
                return self._blocked_until - now
            while self._admitted and self._admitted[0] <= now - self.window.seconds:
                self._admitted.popleft()
            if len(self._admitted) < self.window.count:
                self._admitted.append(now)
                return 0.0
            if self.window.block > 0:
                self.blocks += 1
                self._blocked_until = now + self.window.block
                return self.window.block
            return self._admitted[0] + self.window.seconds - now
