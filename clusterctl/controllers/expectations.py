"""Creation/deletion expectations: how a controller avoids acting twice on a stale cache.

After a ReplicaSet controller creates 3 pods, its informer has not seen them yet; a reconcile
that ran now would count 0 pods and create 3 more. Kubernetes' ``ControllerExpectations``: before
acting, record how many adds/deletes we expect to observe; informer handlers lower the counts;
``satisfied(key)`` is True when every expected event was observed — or when the expectation is
older than ``ttl`` (a lost event must not wedge a controller forever). Deletions are tracked by
pod key so a duplicate event is not counted twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Expectation:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    at: float = 0.0


class Expectations:
    def __init__(self, *, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._items: dict[str, _Expectation] = {}

    def expect_creations(self, key: str, count: int) -> None:
        exp = self._items.setdefault(key, _Expectation())
        exp.adds += count
        exp.at = self._clock()

    def expect_deletions(self, key: str, pod_keys: list[str]) -> None:
        exp = self._items.setdefault(key, _Expectation())
        exp.deletes.update(pod_keys)
        exp.at = self._clock()

    def creation_observed(self, key: str) -> None:
        exp = self._items.get(key)
        if exp is not None and exp.adds > 0:
            exp.adds -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        exp = self._items.get(key)
        if exp is not None:
            exp.deletes.discard(pod_key)

    def lower_creations(self, key: str, count: int = 1) -> None:
        """A create failed: it will never be observed."""
        self.creation_observed(key) if count == 1 else [self.creation_observed(key) for _ in range(count)]

    def satisfied(self, key: str) -> bool:
        exp = self._items.get(key)
        if exp is None:
            return True
        if exp.adds <= 0 and not exp.deletes:
            return True
        return self._clock() - exp.at > self.ttl

    def forget(self, key: str) -> None:
        self._items.pop(key, None)
