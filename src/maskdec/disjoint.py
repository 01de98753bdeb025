"""Disjoint sets (union-find): which items end up grouped together through shared links."""
from __future__ import annotations

from typing import Generic, Hashable, TypeVar

__all__ = ["DisjointSets"]

T = TypeVar("T", bound=Hashable)


class DisjointSets(Generic[T]):
    """Items in sets; `find` names an item's set by its root, `join` merges two sets."""

    def __init__(self) -> None:
        self.parent: dict[T, T] = {}

    def find(self, item: T) -> T:
        """The root of `item`'s set (an item seen for the first time is a set of its own)."""
        parent = self.parent
        while parent.setdefault(item, item) != item:
            parent[item] = parent[parent[item]]  # path halving
            item = parent[item]
        return item

    def join(self, keep: T, other: T) -> None:
        """Merge the set rooted at `other` into the one rooted at `keep` (both roots)."""
        if keep != other:
            self.parent[other] = keep
