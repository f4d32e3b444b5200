"""The wheel carries the knowledge base and prompts, and triages from another directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_triages_from_elsewhere(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(out), str(REPO)],
                   check=True, capture_output=True, cwd=tmp_path)
    wheel = next(out.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for need in ("assistant/_data/knowledge_base/red_flags.yaml",
                 "assistant/_data/knowledge_base/departments.yaml",
                 "assistant/_data/knowledge_base/models/acuity/model.npz",
                 "assistant/_data/knowledge_base/complaint_vocabulary.yaml",
                 "assistant/_data/prompts/lead_in.yaml"):
        assert need in names, need
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"],  # dependencies only
           "ASSISTANT_DATA_DIR": str(elsewhere / "data")}
    code = ("import sys, assistant; assert 'site-packages' in assistant.__file__ and "
            "str(assistant.__file__).startswith(sys.prefix), assistant.__file__; "
            "sys.argv = ['assistant', 'triage', '--text', '胸口压榨样疼痛，出冷汗', '--age', '60', '--json']; "
            "from assistant.cli import main; main()")
    run = subprocess.run([str(py), "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout[run.stdout.index("{"):])
    assert result["disposition"] in ("emergency", "emergency_ambulance") and result["red_flags"]
