"""Settings dataclasses as config keys: each registered algorithm and task family declares a
dataclass of its own keys (their types, defaults and, in ``__post_init__``, their checks); the
config reads those keys through :class:`Option` s gathered from every registered dataclass."""
from __future__ import annotations

import copy
import dataclasses
import functools
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


@functools.cache
def _declared(cls: type) -> tuple[tuple[str, Any, dataclasses.Field], ...]:
    """A settings dataclass's fields with their resolved types (read once per class)."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name], f) for f in dataclasses.fields(cls))


def options_of(settings: Iterable[type], exclude: Iterable[str] = ()) -> dict[str, Option]:
    """The keys of the ``settings`` dataclasses (the first declaration of a key wins), except ``exclude``."""
    skip = set(exclude)
    out: dict[str, Option] = {}
    for cls in settings:
        for name, hint, f in _declared(cls):
            if name not in skip and name not in out:
                out[name] = Option(hint, field_default(f), cls)
    return out


def keys_of(settings: type | None) -> list[str]:
    """The field names of a settings dataclass, in order ([] for None)."""
    return [] if settings is None else [f.name for f in dataclasses.fields(settings)]


def settings_from(settings: type | None, source: Any) -> Any:
    """A settings dataclass built from ``source`` (a config section), each field read by name:
    building it runs the dataclass's checks. None when there is no dataclass."""
    if settings is None:
        return None
    return settings(**{key: getattr(source, key) for key in keys_of(settings)})
