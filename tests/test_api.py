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


def test_the_facade_exports_every_registered_algorithm_and_family_class():
    """``metalearn.__all__`` names the class behind every registry entry, and that name is the class."""
    from metalearn.tasks import get_task_family
    classes = [metalearn.get_algorithm(n) for n in metalearn.list_algorithms()]
    classes += [get_task_family(n).cls for n in metalearn.list_task_families()]
    missing = sorted({c.__name__ for c in classes} - set(metalearn.__all__))
    assert not missing, f"add to metalearn.__all__: {missing}"
    for cls in classes:
        assert getattr(metalearn, cls.__name__) is cls
    assert all(hasattr(metalearn, name) for name in metalearn.__all__)


def test_families_implement_the_typed_protocols_of_their_kind():
    from metalearn.protocols import EnvironmentFamily, OptimizeeFamily, ShapedFamily, SupervisedFamily
    import metalearn as ml
    sine, problems, nav = ml.SinusoidTasks(), ml.QuadraticProblems(), ml.Nav2dTasks()
    assert isinstance(sine, SupervisedFamily) and not isinstance(sine, EnvironmentFamily)
    assert isinstance(problems, OptimizeeFamily) and not isinstance(problems, ShapedFamily)
    assert isinstance(nav, EnvironmentFamily) and not isinstance(nav, OptimizeeFamily)
