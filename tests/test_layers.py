"""Layer contracts that import-linter cannot see: the CLI's fast start."""

from __future__ import annotations

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

