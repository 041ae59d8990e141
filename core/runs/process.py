"""Running a run in its own process: launched detached from the caller (an app page can be left and
the work goes on), and waited for by scripts and tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from core.runs.status import status


def launch_background(run_dir: Path, cwd: str | Path | None = None, command: str = "run") -> subprocess.Popen:
    """Execute a queued run (or, with command="sweep-run", a requested sweep) in a separate process
    (`python -m core COMMAND FOLDER`), detached from the caller so an app page can be left and the
    work goes on; output goes to run.log in the folder."""
    log = open(Path(run_dir) / "run.log", "ab")  # noqa: SIM115 - handed to the child process
    env = os.environ | {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, "-m", "core", command, str(run_dir)], cwd=cwd or Path(__file__).resolve().parents[2],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env)


def wait_for(run_dir: Path, timeout: float = 600, poll: float = 0.5) -> dict:
    """Block until a run leaves queued/running (for scripts and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(run_dir)
        if st.get("state") not in ("queued", "running"):
            return st
        time.sleep(poll)
    raise TimeoutError(f"run {Path(run_dir).name} still {status(run_dir).get('state')} after {timeout:.0f} s")
