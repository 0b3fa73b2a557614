"""Reading the config of a run folder written by an earlier version of metalearn: one function,
:func:`migrate_config`, turns any earlier layout into the current one (``version`` in the file;
a file without it is version 1).

Version 1 (before per-family and per-model settings) wrote every family's keys into one ``task``
section (37 keys for any run: ``task.horizon`` in an Omniglot run, ``task.ways`` in a sinusoid
run) and every model's into ``model``. Version 2 writes the keys every family shares plus the run's
own family's keys, and the model's name plus its own keys; the others were never read by that
family or model, so migrating drops them.
"""
from __future__ import annotations

import copy
from typing import Any

from ..errors import ConfigError
from .schema import CONFIG_VERSION, ModelConfig, TaskConfig


def check_version(version: Any) -> None:
    """Refuse a config written in a layout this metalearn does not read directly (a user's config
    file has no ``version``: it is read as the current layout, strictly)."""
    if version is None or version == CONFIG_VERSION:
        return
    if isinstance(version, int) and not isinstance(version, bool) and version < CONFIG_VERSION:
        raise ConfigError(f"this config has layout version {version}; a run folder's config is migrated when the "
                          f"run is opened (metalearn.config.migrate_config), a config file of your own should drop "
                          f"the 'version' key")
    raise ConfigError(f"this config has layout version {version!r}, newer than this metalearn reads "
                      f"({CONFIG_VERSION}); upgrade metalearn")


def migrate_config(data: dict[str, Any]) -> dict[str, Any]:
    """The nested config ``data`` of a run folder, of any earlier layout, as the current layout
    (a new dict; ``data`` is not changed). A current or newer one is returned as it is."""
    if not isinstance(data, dict):
        return data
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version >= CONFIG_VERSION:
        return data
    out = copy.deepcopy(data)
    if version < 2:
        _drop_other_owners_keys(out)
    out["version"] = CONFIG_VERSION
    return out


def _drop_other_owners_keys(data: dict[str, Any]) -> None:
    """Version 1 -> 2: the task section keeps the shared keys and the run's family's own, the
    model section the model's name and its own keys."""
    for name, section in (("task", TaskConfig), ("model", ModelConfig)):
        if isinstance(data.get(name), dict):
            data[name] = section.keep_own_keys(data[name])
