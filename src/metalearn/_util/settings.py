"""Settings dataclasses as config keys: each registered algorithm and task family declares a
dataclass of its own keys (their types, defaults and, in ``__post_init__``, their checks); the
config reads those keys through :class:`Option` s gathered from every registered dataclass."""
from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """A config key declared by a settings dataclass: its type, default and declaring dataclass
    (which checks a value: ``owner(**{key: value})``)."""

    type: Any
    default: Any
    owner: type

    def fresh_default(self) -> Any:
        """The default, as a copy when it is a list (so one config's edits never reach another)."""
        return copy.deepcopy(self.default)


def field_default(f: dataclasses.Field) -> Any:
    """A dataclass field's default, from ``default`` or ``default_factory``."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"settings field {f.name!r} has no default; every config key needs one")


def options_of(settings: Iterable[type], exclude: Iterable[str] = ()) -> dict[str, Option]:
    """The keys of the ``settings`` dataclasses (the first declaration of a key wins), except ``exclude``."""
    skip = set(exclude)
    out: dict[str, Option] = {}
    for cls in settings:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in skip and f.name not in out:
                out[f.name] = Option(hints[f.name], field_default(f), cls)
    return out


def keys_of(settings: type | None) -> list[str]:
    """The field names of a settings dataclass, in order ([] for None)."""
    return [] if settings is None else [f.name for f in dataclasses.fields(settings)]
