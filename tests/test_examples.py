"""Examples run in CI in their short mode."""
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_sinusoid_api_example_runs_and_adaptation_helps():
    out = subprocess.run([sys.executable, str(EXAMPLES / "sinusoid_api.py"), "--short"],
                         capture_output=True, text=True, check=True).stdout
    before, after = map(float, re.search(r"([\d.]+) before adaptation, ([\d.]+) after", out).groups())
    assert after < before


def test_patients_table_example_adapts_to_a_new_patient():
    out = subprocess.run([sys.executable, str(EXAMPLES / "patients_table.py"), "--short"],
                         capture_output=True, text=True, check=True).stdout
    before, after = map(float, re.search(r"RMSE ([\d.]+) before adaptation, ([\d.]+) after", out).groups())
    assert after < before
