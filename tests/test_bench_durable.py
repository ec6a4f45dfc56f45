"""bench/durable.py runs against the current services (a short run: figures are not checked)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_durable_bench_runs_and_prints_both_settings():
    done = subprocess.run([sys.executable, "-m", "bench.durable", "--seconds", "0.2", "--rounds", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 client: HTQ_REDIS_MIN_REPLICAS=0" in done.stdout and "8 clients:" in done.stdout
