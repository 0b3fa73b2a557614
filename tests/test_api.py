import importlib

import metalearn


def test_every_exported_name_imports():
    assert metalearn.__all__, "the facade must export names"
    for name in metalearn.__all__:
        assert getattr(metalearn, name) is not None, name


def test_cli_modules_import_and_registries_are_consistent():
    importlib.import_module("metalearn.cli.main")
    assert "maml" in metalearn.list_algorithms()
    assert "sinusoid" in metalearn.list_task_families()
    assert "sinusoid" in metalearn.list_presets()
    for name in metalearn.list_presets():
        metalearn.load_preset(name)  # every shipped preset is a valid config
