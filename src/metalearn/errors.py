"""Errors raised for bad user input.

Every error a user can cause is a :class:`MetalearnError` whose message says what was expected,
what was received and what to do. The CLI prints it on one line and exits with code 2.
"""


class MetalearnError(Exception):
    """A problem with the user's input (config, data, run folder), not a bug in metalearn."""


class ConfigError(MetalearnError):
    """An unknown key, a wrong type or an out-of-range value in a config or a CLI flag."""


class RunError(MetalearnError):
    """A missing, corrupt or incompatible run folder or checkpoint."""


class DataError(MetalearnError):
    """A user's data file that cannot be used as given: a missing column, a non-number in a
    numeric column, a missing or constant target, a group too small for its tasks."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def yaml_problem(exc: BaseException) -> str:
    """A YAML parser's error as one line: what is wrong and where (``line L, column C``)."""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if problem is None:
        return " ".join(str(exc).split())
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(exc, "context", None)
    return f"{context + ', ' if context and context != problem else ''}{problem}{where}"
