"""A bounded, order-preserving parallel map: decode the next images while the model runs on the current batch."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["prefetch_map"]


def prefetch_map(fn: Callable[[T], R], items: Iterable[T], num_threads: int, ahead: int) -> Iterator[R]:
    """Yields ``fn(item)`` for each item in order, computing up to ``ahead`` results in ``num_threads`` threads.

    PIL decoding and resizing release the GIL, so threads overlap image work with the model's forward pass
    without the start-up and pickling cost of worker processes. ``num_threads=0`` runs inline.
    """
    if num_threads <= 0:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(num_threads) as pool:
        pending: collections.deque = collections.deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # stopped early (an error, Ctrl-C): drop the work not started, so the pool closes at once
            for future in pending:
                future.cancel()
