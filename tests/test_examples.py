"""The examples run as shipped (tiny sizes; real MiniLM and data; slow, run by CI)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script,args,expect", [
    ("plain_loop.py", ["--train-size", "32"], "test accuracy:"),
    ("hf_trainer.py", ["--train-size", "32", "--max-steps", "2"], "structlora/ib"),
])
def test_example_runs(script, args, expect, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert expect in out.stdout
