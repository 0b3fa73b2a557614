"""One registry type for every kind of registered thing (algorithms, task families, models): entries
by name, listed in sorted order, and an unknown name refused with the valid choices named."""
from __future__ import annotations

from typing import Generic, TypeVar

from ..errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one kind by name; ``what`` names the kind in the error for an unknown name."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> None:
        self._entries[name] = entry

    def remove(self, name: str) -> None:
        """Take ``name`` out (a plugin's or a test's entry); an unknown name is a ``ConfigError``."""
        self.get(name)
        del self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def values(self) -> list[T]:
        """The entries in the order they were registered."""
        return list(self._entries.values())

    def get(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name is a ``ConfigError`` listing the valid ones."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown {self.what} {name!r}; choose one of: {', '.join(self.names())}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries
