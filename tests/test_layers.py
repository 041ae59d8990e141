"""Layer contracts that import-linter cannot see: the CLI's fast start, and pages on core's public API only.
(Imports between core's modules are checked by `lint-imports`, contracts in pyproject.toml.)"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SAMPLE_TAXONOMY

HEAVY = {"torch", "scipy", "sklearn", "ray", "streamlit"}


def imported_top_levels(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `python -X importtime -m core ARGS` and return it with the top-level packages it imported."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    names = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in r.stderr.splitlines() if line.startswith("import time:")}
    return r, names


@pytest.mark.slow
@pytest.mark.parametrize("args", [("taxonomy", "--help"), ("taxonomy", str(SAMPLE_TAXONOMY), "--json")])
def test_the_taxonomy_command_starts_without_the_heavy_libraries(args):
    r, names = imported_top_levels(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert {"core", "argparse"} <= names  # the scan reads -X importtime's report
    assert not names & HEAVY, sorted(names & HEAVY)


def core_imports(path) -> list[tuple[str, str | None]]:
    """(module, name) for every `import core...` and `from core... import name` in a file; name is None
    for a plain import."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names if a.name.split(".")[0] == "core"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "core":
            out += [(node.module, a.name) for a in node.names]
    return out


def test_pages_import_only_the_public_api_of_core():
    """Pages and app.py sit on top of core: they may use any public module of the library, never a private
    name, a module that does not exist, or the command line (the CLI is a sibling front end, not an API)."""
    files = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]
    seen, wrong = set(), []
    for path in files:
        for module, name in core_imports(path):
            parts = module.split(".")
            if name is not None and (ROOT.joinpath(*parts, f"{name}.py")).exists():
                parts.append(name)  # `from core.runs import store`: the module core.runs.store
            elif name is not None and name.startswith("_"):
                wrong.append(f"{path.name}: {module}.{name} is private")
            is_module = ROOT.joinpath(*parts).with_suffix(".py").exists() or (ROOT.joinpath(*parts) / "__init__.py").exists()
            dotted = ".".join(parts)
            seen.add(dotted)
            if not is_module:
                wrong.append(f"{path.name}: {dotted} is not a module of core")
            elif any(p.startswith("_") for p in parts) or parts[:2] == ["core", "cli"]:
                wrong.append(f"{path.name}: {dotted} is not part of core's public API")
    assert len(seen) > 10, seen  # the scan found the pages' imports
    assert not wrong, wrong
