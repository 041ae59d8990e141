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


def test_an_internal_error_is_reported_as_a_bug_not_as_bad_input(monkeypatch, capsys):
    """A KeyError inside Taxolens once printed "error: plain" and exited 2, blaming the input."""
    from core.cli.main import EXIT_BAD_INPUT, EXIT_BUG, main
    from core.taxonomy.tree import Taxonomy

    def broken(self):
        raise KeyError("plain")

    monkeypatch.setattr(Taxonomy, "summary", broken)
    code = main(["taxonomy", str(SAMPLE_TAXONOMY)])
    err = capsys.readouterr().err
    assert code == EXIT_BUG != EXIT_BAD_INPUT
    assert err.strip().splitlines()[-1] == "internal error (a bug in Taxolens, not your input): KeyError: 'plain'"
    assert "Traceback" in err and "in broken" in err and "error: plain" not in err


def test_a_user_error_still_exits_2_without_a_traceback(tmp_path, capsys):
    from core.cli.main import EXIT_BAD_INPUT, main

    code = main(["taxonomy", str(tmp_path / "missing.txt")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and err.startswith("error: ") and f"file not found: {tmp_path / 'missing.txt'}" in err
    assert "internal error" not in err and "Traceback" not in err
