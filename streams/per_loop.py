"""One instance per running event loop: the worker's hub, heartbeat ticker, presence tracker."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """Create an instance the first time a loop asks for it, and keep it for that loop.

    A worker runs one loop, so this is one per process in production; tests run
    many loops in one process, and an instance holds futures and tasks bound to
    its loop. The loops are weak keys, so a closed loop's instance goes with it.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> T:
        """Return the running loop's instance, created on first use."""
        loop = asyncio.get_running_loop()
        instance = self._instances.get(loop)
        if instance is None:
            instance = self._instances[loop] = self._factory()
        return instance
