import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SAMPLE_TAXONOMY, shared_file

pytestmark = pytest.mark.slow  # every test runs `python -m core` in a new process


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=env)


def test_google_summary_json_last_line():
    r = run_cli("taxonomy", shared_file("taxonomies/google-product-taxonomy-with-ids.en-US.txt"), "--json")
    assert r.returncode == 0, r.stderr
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert (last["nodes"], last["roots"], last["max_depth"]) == (5595, 21, 7)


def test_sample_taxonomy_summary():
    r = run_cli("taxonomy", SAMPLE_TAXONOMY, "--json")
    assert r.returncode == 0 and json.loads(r.stdout.splitlines()[-1])["leaves"] == 104


def test_cyclic_csv_and_binary_file_exit_2_without_traceback(tmp_path):
    (tmp_path / "cyc.csv").write_text("id,parent_id,name\n1,2,Shoes\n2,1,Boots\n")
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    for path in ("cyc.csv", "blob.bin"):
        r = run_cli("taxonomy", tmp_path / path)
        assert r.returncode == 2
        assert "Traceback" not in r.stderr and r.stderr.startswith("error:")
    assert "cycle" in run_cli("taxonomy", tmp_path / "cyc.csv").stderr


def test_wrong_format_override_exits_2(tmp_path):
    (tmp_path / "p.txt").write_text("A > B\n")
    r = run_cli("taxonomy", tmp_path / "p.txt", "--format", "bestbuy")
    assert r.returncode == 2 and "bestbuy" in r.stderr and "Traceback" not in r.stderr


def test_header_only_csv_and_flat_taxonomy_in_the_cli(tmp_path):
    (tmp_path / "header.csv").write_text("id,parent_id,name\n")
    r = run_cli("taxonomy", tmp_path / "header.csv")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "no categories below it" in r.stderr
    (tmp_path / "flat.txt").write_text("Shoes\nBags\nHats\n")
    r = run_cli("taxonomy", tmp_path / "flat.txt", "--json")
    assert r.returncode == 0 and json.loads(r.stdout.splitlines()[-1])["nodes"] == 3
