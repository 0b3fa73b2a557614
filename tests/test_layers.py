"""The shape of the package, checked on its source: layers import only downward, the import graph
has no cycles, the modules that dispatch (build, evaluate, report, compare, the CLI) import no
concrete algorithm or task family, and no module outside the registries compares a registered name
(algorithm, task family, model, evaluator, adapter) as a string."""
import ast
from pathlib import Path

import pytest

import metalearn as ml
from metalearn.evaluation.adapters import list_adapters
from metalearn.evaluation.registry import list_evaluators
from metalearn.models import list_models
from metalearn.tasks import get_task_family

SRC = Path(ml.__file__).resolve().parent

# lowest first; a module may import its own layer and the ones below, never one above
from metalearn._util.layers import LAYERS  # noqa: E402

RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
# module paths below metalearn (a package name covers its modules)
DISPATCHERS = ("training.build", "training.loading", "evaluation.registry", "evaluation.adapters",
               "evaluation.adaptation", "evaluation.groups", "evaluation.compare", "report.figures", "tune", "cli")
# where a registered name may be written as a string: the registries that register them
REGISTRIES = ("algorithms/registry.py", "tasks/registry.py", "models/registry.py", "evaluation/registry.py",
              "evaluation/adapters.py")
# strings that are registered names by coincidence but values of another setting here
OTHER_SETTINGS = {("tasks/few_shot/image_families.py", "maml"): "task.protocol",
                  ("data/tables.py", "classification"): "task.target_type"}


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = ["metalearn", *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names) for every import in the file, except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text())
    here = module_name(path).split(".")
    package = here if is_package(path) else here[:-1]
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("metalearn"):
                out.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("metalearn")]
    return out


FILES = sorted(SRC.rglob("*.py"))
MODULES = {module_name(p): p for p in FILES}


def layer_of(module: str) -> int:
    parts = module.split(".")
    return RANK["__init__" if len(parts) == 1 else parts[1]]


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for target, names in imports(path):
            # ``from .pkg import sub`` imports the submodule
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            for dst in subs or [target]:
                graph[mod].add(dst)
    return graph


def test_every_module_is_in_a_layer():
    missing = sorted({m.split(".")[1] for m in MODULES if "." in m} - set(RANK))
    assert not missing, f"add these modules to LAYERS: {missing}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layers_import_only_downward(module):
    up = [dst for dst in edges()[module] if layer_of(dst) > layer_of(module)]
    assert not up, f"{module} (layer {layer_of(module)}) imports higher layers: {up}"


def test_the_import_graph_has_no_cycles():
    graph = edges()
    # importing a submodule runs its packages' __init__ first (the top package aside: it gathers all)
    for mod in list(graph):
        for dst in list(graph[mod]):
            parts = dst.split(".")
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if parent in graph and parent != mod and not mod.startswith(parent + "."):
                    graph[mod].add(parent)
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == "metalearn" or nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle.extend(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, stack + [nxt]):
                return True
        state[node] = 2
        return False

    for mod in sorted(graph):
        if state.get(mod) is None and visit(mod, [mod]):
            break
    assert not cycle, " -> ".join(cycle)


def registered_names() -> set[str]:
    return (set(ml.list_algorithms()) | set(ml.list_task_families()) | set(list_models()) | set(list_evaluators())
            | set(list_adapters()))


def concrete_classes() -> set[str]:
    algorithms = {ml.get_algorithm(a).__name__ for a in ml.list_algorithms()}
    families = {get_task_family(f).cls.__name__ for f in ml.list_task_families()}
    return algorithms | families


DISPATCH_FILES = [p for m, p in MODULES.items()
                  if any(f"{m}.".startswith(f"metalearn.{d}.") for d in DISPATCHERS)]


@pytest.mark.parametrize("path", DISPATCH_FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_dispatchers_import_no_concrete_algorithm_or_family(path):
    bad = []
    for target, names in imports(path):
        parts = target.split(".")
        if len(parts) > 2 and parts[1] in ("algorithms", "tasks", "models") and parts[2] not in ("registry", "base"):
            bad.append(target)
        bad += [f"{target}.{n}" for n in names if n in concrete_classes()]
    assert not bad, f"{path.name} imports {bad}; go through the registries and the declarations"


def compared_names(path: Path) -> list[str]:
    """Registered names that ``path`` compares with ``==``, ``!=``, ``in``, ... as string constants."""
    names = registered_names()
    rel = str(path.relative_to(SRC))
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                consts = [side] if isinstance(side, ast.Constant) else (
                    side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [])
                found += [c.value for c in consts if isinstance(c, ast.Constant) and c.value in names
                          and (rel, c.value) not in OTHER_SETTINGS]
    return found


NON_REGISTRY_FILES = [p for p in FILES if str(p.relative_to(SRC)) not in REGISTRIES]


@pytest.mark.parametrize("path", NON_REGISTRY_FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_compares_a_registered_name_as_a_string(path):
    found = compared_names(path)
    assert not found, f"{path.name} compares registered names as strings: {found}; dispatch on declarations"


def test_every_declared_evaluator_and_adapter_is_registered():
    for name in ml.list_task_families():
        cls = get_task_family(name).cls
        assert getattr(cls, "evaluator", "adaptation") in list_evaluators(), name
        accepts = getattr(cls, "adapt_input", None)
        assert accepts is None or accepts in list_adapters(), name


def test_the_checks_would_catch_an_upward_import_and_a_name_comparison(tmp_path):
    """The checks above are not vacuous: a file like these is caught."""
    bad = SRC / "functional" / "_probe_upward.py"
    bad.write_text("from ..training.trainer import Trainer\n")
    try:
        assert any(layer_of(t) > layer_of("metalearn.functional") for t, _ in imports(bad))
    finally:
        bad.unlink()
    probe = SRC / "evaluation" / "_probe_names.py"
    probe.write_text('if cfg.algo.name == "maml" or accepts in ("table_rows",) or ev != "groups":\n    pass\n')
    try:
        assert sorted(compared_names(probe)) == ["groups", "maml", "table_rows"]
    finally:
        probe.unlink()


def test_the_trainer_names_no_algorithms_metrics():
    """RL throughput, returns and the trust region's numbers come from the algorithm's declarations
    (rate_metrics, progress_metrics) and the outer step's own report, not from names in the trainer."""
    tree = ast.parse((SRC / "training" / "trainer.py").read_text())
    names = {"env_steps", "env_steps_per_s", "train_return", "return", "kl", "improvement", "step_size"}
    found = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in names}
    assert not found, f"training/trainer.py names {sorted(found)}"
    from metalearn.algorithms import MAMLTRPO
    assert MAMLTRPO.rate_metrics == ("env_steps",) and "train_return" in MAMLTRPO.progress_metrics
