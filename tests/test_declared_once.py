"""Every fact declared once (issue 17): the pages, the CLI and the benchmarks read the declarations
(core/settings.py, core/labels/kinds.py, core/evaluation/registry.py, PATH_SEP in core/taxonomy/tree.py)
instead of restating them. The scan reads the source text; a line that pins a value on purpose (a
benchmark's fixed subject) says so with a `declared-once: ok` comment."""

import ast
from pathlib import Path

import pytest

from core import settings
from core.evaluation.registry import METRICS, TOP_K
from core.labels.kinds import TARGET_KINDS
from core.taxonomy.tree import PATH_SEP

ROOT = Path(__file__).resolve().parents[1]
SCANNED = sorted([*ROOT.glob("pages/*.py"), *ROOT.glob("core/cli/*.py"), *ROOT.glob("bench/*.py"), ROOT / "app.py"])
OK = "declared-once: ok"
# calls whose keyword arguments are settings: a literal equal to the declared default restates it
CONFIG_CALLS = {"ExperimentConfig", "TrainConfig", "sample_config", "replace", "build_targets", "setting_widget"}


def _name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def _strings(node: ast.AST) -> set[str]:
    """String constants among a container's elements, and the first element of each tuple/list in it
    (so [("top1", "Top-1", False), ("hdist@5", ...)] counts both keys)."""
    items = list(node.keys) + list(node.values) if isinstance(node, ast.Dict) else list(node.elts)
    firsts = [i.elts[0] for i in items if isinstance(i, ast.Tuple | ast.List) and i.elts]
    return {i.value for i in [*items, *firsts] if isinstance(i, ast.Constant) and isinstance(i.value, str)}


def _joins_paths(node: ast.AST) -> bool:
    """The separator as a value (" > ".join, split(" > ")) or gluing an f-string path; prose that
    shows a path (a help text's 'A > B > C') is documentation, not a restatement."""
    if isinstance(node, ast.Constant):
        return node.value == PATH_SEP
    if isinstance(node, ast.JoinedStr):
        # a part that is the separator alone is a Constant of its own, found above
        return any(isinstance(v, ast.Constant) and v.value != PATH_SEP and str(v.value).startswith(PATH_SEP)
                   for v in node.values)
    return False


def restatements(source: str) -> list[str]:
    """What a source restates: "line N: what" for each finding, lines marked OK left out."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if line and OK in lines[line - 1]:
            continue
        if _joins_paths(node):
            found.append(f"line {line}: the path separator {PATH_SEP!r} (use core.taxonomy.tree.PATH_SEP)")
        if isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
            strings = _strings(node)
            kinds, metrics = strings & set(TARGET_KINDS), strings & set(METRICS)
            if len(kinds) >= 2:
                found.append(f"line {line}: a list of target kinds {sorted(kinds)} (read core/labels/kinds.py)")
            if len(metrics) >= 2:
                found.append(f"line {line}: a list of metric keys {sorted(metrics)} (read core/evaluation/registry.py)")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            objectives = [p.rpartition(":")[0] for p in node.value.split(",") if p.endswith((":max", ":min"))]
            if any(m in METRICS for m in objectives):
                found.append(f"line {line}: objectives spelled out {node.value!r} (use sweep.DEFAULT_OBJECTIVES)")
        if isinstance(node, ast.Call):
            declared = _name(node.func) in CONFIG_CALLS
            for kw in node.keywords:
                if not isinstance(kw.value, ast.Constant) or kw.arg is None:
                    continue
                if declared and kw.arg in settings.defaults() and kw.value.value == settings.get(kw.arg).default \
                        and not isinstance(kw.value.value, bool | type(None)):
                    found.append(f"line {line}: {kw.arg}={kw.value.value!r} restates the declared default")
                if kw.arg in ("top_k", "k") and kw.value.value == TOP_K and _name(node.func) != "build_targets":
                    found.append(f"line {line}: {kw.arg}={TOP_K} restates TOP_K (core/evaluation/registry.py)")
    return found


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_cli_and_bench_restate_nothing_declared(path):
    assert restatements(path.read_text()) == []


def test_the_scan_finds_each_kind_of_restatement():
    """The patterns the issue names, each found; their declared spellings are not."""
    restated = '''
CARDS = [("top1", "Top-1 accuracy", False), ("hdist@5", "hdist@5", True)]
disabled = kind not in ("tree", "hybrid")
leaf = path.split(" > ")[-1]
child = f"{parent} > {name}"
config = sample_config(epochs=15)
targets = build_targets("semantic", embeddings=e, k=20, alpha=0.1)
p.add_argument("--objectives", default="top1:max,hdist@5:min")
answers = model.answers(ids, probs, top_k=5)
'''
    found = restatements(restated)
    assert sorted(int(f.split(":")[0].split()[1]) for f in found) == [2, 3, 4, 5, 6, 7, 7, 8, 9], found
    declared = '''
CARDS = [METRICS[key] for key in HEADLINE]
disabled = "beta" not in target_kind(kind).reads
leaf = path.split(PATH_SEP)[-1]
help = "a path such as 'Footwear > Boots > Rain Boots'"
config = sample_config(epochs=SAMPLE_EPOCHS)
targets = build_targets("semantic", embeddings=e, k=3, alpha=0.3)
kinds = [TARGET_KINDS["tree"]]  # declared-once: ok (one kind is not a list of them)
x = ("tree", "hybrid")  # declared-once: ok
'''
    assert restatements(declared) == []
