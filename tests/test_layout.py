"""Architecture rules that must hold for every change (DESIGN.md, section 8)."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _imported_roots(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_cores_never_import_helics_or_upper_layers():
    offenders = []
    for core in ("market_core", "grid_core"):
        for path in sorted((ROOT / core).rglob("*.py")):
            bad = _imported_roots(path) & {"helics", "federation", "federates"}
            if bad:
                offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == []


def test_top_level_packages_import():
    import federates  # noqa: F401
    import federation  # noqa: F401
    import grid_core  # noqa: F401
    import market_core  # noqa: F401


def test_test_modules_have_unique_basenames():
    # The test folders have no __init__.py, so pytest imports each test module
    # by its basename: two files with one name abort the whole collection.
    seen: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
