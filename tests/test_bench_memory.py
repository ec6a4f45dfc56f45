"""bench/memory.py runs against the current services: a change of their signatures breaks it here,
not at the next sizing (it once called `Attempts.start` without the worker it now takes)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_memory_bench_runs_and_prints_every_kind():
    done = subprocess.run([sys.executable, "-m", "bench.memory", "--count", "300"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for kind in ("pending request", "finished request", "queue message, waiting", "batch record, pending"):
        assert kind in done.stdout
