"""The client installs on its own: in a fresh venv, ``pip install ./client`` brings httpx and
none of the server (FastAPI, uvicorn, Starlette, the ``app`` and ``model_store`` packages)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.live_server import free_port

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import importlib.resources, importlib.util, json
import logreg_client, logreg_client.cli
assert importlib.resources.files("logreg_client").joinpath("py.typed").is_file()
names = ["httpx", "fastapi", "uvicorn", "starlette", "app", "model_store", "numpy", "sklearn"]
print(json.dumps({n: importlib.util.find_spec(n) is not None for n in names}))
"""


@pytest.mark.slow
def test_fresh_venv_has_the_client_and_not_the_server(tmp_path: Path) -> None:
    source = tmp_path / "client"  # a copy: the build writes egg-info and build/ beside the code
    shutil.copytree(ROOT / "client", source, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    install = subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", source],
        capture_output=True,
        text=True,
        timeout=600,
        env=clean,
    )
    assert install.returncode == 0, install.stderr
    # run outside the repository, so that its folders are not importable from the cwd
    probe = subprocess.run(
        [bin_dir / "python", "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, env=clean
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found == {
        "httpx": True,
        "fastapi": False,
        "uvicorn": False,
        "starlette": False,
        "app": False,
        "model_store": False,
        "numpy": False,
        "sklearn": False,
    }
    version = subprocess.run([bin_dir / "logreg", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("logreg-client ")
    # without rich: the plain output path, here as far as "cannot reach the service"
    nowhere = subprocess.run(
        [bin_dir / "logreg", "--url", f"http://127.0.0.1:{free_port()}", "models"],
        capture_output=True,
        text=True,
        env=clean,
    )
    assert nowhere.returncode == 3 and "cannot reach" in nowhere.stderr
