"""The package's import levels (docs/architecture.md), checked on the source.

Every import of every module, including imports inside functions, is read
from the syntax tree; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
CORE = "diffseglung_core"
PLUGIN = "napari_diffseglung"

#: Units of the core, lowest level first. A unit may import units of its own
#: level or below, never above, and units never import each other both ways.
LEVELS: list[set[str]] = [
    {"errors", "progress", "labels", "volume", "device", "parallel", "binary", "gravity",
     "allocator"},
    {"io", "lung", "calibration", "phantom", "render", "radiomics", "display", "describe"},
    {"model"},
    {"segment", "evaluate"},
    {"training"},
    {"cli"},
]
#: Units of inference: they never reach training or the command line.
INFERENCE = ("segment", "model", "radiomics", "io")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module (and imported name) ``path`` imports."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _unit(name: str) -> str:
    """``diffseglung_core.segment.engine`` -> ``segment``; the plugin is one unit."""
    parts = name.split(".")
    if parts[0] == PLUGIN:
        return PLUGIN
    return parts[1] if parts[0] == CORE and len(parts) > 1 else ""


def _unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        source = _unit(_module_name(path))
        if not source:
            continue
        targets = {_unit(t) for t in _imports(path) if t.startswith((CORE, PLUGIN))}
        graph.setdefault(source, set()).update(t for t in targets if t and t != source
                                                and t != "__version__")
    return graph


def _level(unit: str) -> int:
    for i, units in enumerate(LEVELS):
        if unit in units:
            return i
    raise AssertionError(f"{CORE}.{unit} has no level: add it to LEVELS here and to "
                         "docs/architecture.md")


def test_every_unit_has_a_level_and_imports_only_downwards():
    graph = _unit_graph()
    wrong = []
    for source, targets in graph.items():
        if source == PLUGIN:
            continue
        for target in targets:
            if target == PLUGIN or _level(target) > _level(source):
                wrong.append(f"{source} -> {target}")
    assert not wrong, "imports up the levels: " + ", ".join(sorted(wrong))


def test_units_do_not_import_each_other_both_ways():
    graph = _unit_graph()
    both = sorted(f"{a} <-> {b}" for a, targets in graph.items() for b in targets
                  if a < b and a in graph.get(b, ()))
    assert not both, both


@pytest.mark.parametrize("unit", INFERENCE)
def test_inference_never_imports_training_or_the_cli(unit):
    assert not {"training", "cli"} & _unit_graph().get(unit, set())


def test_the_plugin_uses_neither_training_nor_the_cli():
    assert not {"training", "cli"} & _unit_graph()[PLUGIN]


# -- the edges: the command line and the napari plugin ------------------------------------

EDGES = (SRC / CORE / "cli", SRC / PLUGIN)
#: Libraries of numeric work and of file formats: the core's business, never the edges'.
CORE_LIBRARIES = {"torch", "scipy", "sklearn", "skimage", "nibabel", "nrrd", "pydicom", "tifffile",
                  "highdicom", "PIL", "pandas"}
#: What the edges may use of numpy: turning layers and files into arrays, nothing more.
EDGE_NUMPY = {"asarray", "array", "zeros", "ndarray", "uint8", "float32", "count_nonzero"}
#: Edge modules that may use a core library for display only (pandas: napari's feature table).
DISPLAY_LIBRARIES = {f"{PLUGIN}._layers": {"pandas"}}


def _edge_modules() -> list[Path]:
    return sorted(p for edge in EDGES for p in edge.rglob("*.py"))


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), str(path))


@pytest.mark.parametrize("path", _edge_modules(), ids=lambda p: _module_name(p))
def test_edges_hold_no_numeric_code(path):
    """No numeric or format library, and numpy only to hold arrays, in CLI and widget modules."""
    name = _module_name(path)
    allowed = DISPLAY_LIBRARIES.get(name, set())
    libraries = {t.split(".")[0] for t in _imports(path)} & CORE_LIBRARIES
    assert libraries <= allowed, f"{name} imports {sorted(libraries - allowed)}: move that code to the core"
    numpy_names = {"np", "numpy"}
    used = {node.attr for node in ast.walk(_tree(path)) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id in numpy_names}
    assert used <= EDGE_NUMPY, f"{name} computes with numpy ({sorted(used - EDGE_NUMPY)}): " \
                               "move that code to the core"


def _declared_all(module: str):
    """``__all__`` of a core module read from its source, or None."""
    parts = module.split(".")
    base = SRC.joinpath(*parts)
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    if not path.is_file():
        return None
    for node in _tree(path).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return None


def _is_module(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.is_dir() or base.with_suffix(".py").is_file()


@pytest.mark.parametrize("path", _edge_modules(), ids=lambda p: _module_name(p))
def test_edges_call_only_the_public_core_api(path):
    """Widgets and commands call the core directly, through public names only (no facade)."""
    name = _module_name(path)
    unit = _unit(name)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    wrong = []
    for node in ast.walk(_tree(path)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            parts = package.split(".")
            module = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if not module.startswith(CORE) or _unit(module) == unit:
            continue
        public = _declared_all(module)
        for alias in node.names:
            full = f"{module}.{alias.name}"
            private = any(part.startswith("_") for part in full.split(".")) and alias.name != "__version__"
            hidden = public is not None and alias.name not in public and not _is_module(full)
            if private or hidden:
                wrong.append(full)
    assert not wrong, f"{name} uses names outside the core's public API: {wrong}"
