"""A small name -> callable registry. The CLI's choices come from ``names()``."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from attnviz.errors import BadInput

T = TypeVar("T")


class Registry(Generic[T]):
    """Plain functions (or objects) under names; unknown names list the known ones."""

    def __init__(self, what: str):
        self.what = what  # e.g. "attribution method", used in error messages
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self.names())
            raise BadInput(f"unknown {self.what} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
