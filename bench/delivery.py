"""Benchmark of one delivery attempt's CPU in the worker: Deliverer.send to a local target, plain
and with a token's allowlist checked at delivery (a name entry, a network entry), side by side.

Run from the repository root, with the project's virtualenv:

    python -m bench.delivery                  # 5,000 sends per case, 3 rounds
    python -m bench.delivery --sends 1000 --rounds 1

It starts the HTTP target of bench.requests (an asyncio server in a subprocess, keep-alive) and
sends from this process, one thread, over kept-alive connections; it prints the CPU microseconds
(user + system of this process) per send for each case, each round, in turn, so every case sees
the same machine. The plain case is the path of a request without allowed_hosts: the allowlist
cases must not change it.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[0] = str(REPO)

import argparse  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from app.embedded import die_with_parent, free_port  # noqa: E402
from workers.delivery import Deliverer, DeliveryConfig  # noqa: E402

CASES = {"plain (no allowlist)": None, "allowlist, name entry": ["localhost", "*.example.com"],
         "allowlist, network entry": ["10.0.0.0/8", "127.0.0.0/8"]}


def measure(deliverer: Deliverer, url: str, allowed_hosts: list[str] | None, sends: int) -> float:
    """CPU microseconds per send."""
    started = time.process_time()
    for n in range(sends):
        outcome = deliverer.send(delivery_id=f"req_{n}", attempt=1, method="POST", url=url,
                                 headers={"Content-Type": "application/json"}, body=b'{"n": 1}', timeout_s=30,
                                 allowed_hosts=allowed_hosts)
        if outcome.status_code != 200:
            raise RuntimeError(f"send failed: {outcome}")
    return (time.process_time() - started) / sends * 1e6


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sends", type=int, default=5000, help="sends per case and round (5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all cases (3)")
    args = parser.parse_args(argv)
    port = free_port()
    target = subprocess.Popen([sys.executable, "-m", "bench.requests", "_target", str(port)], cwd=REPO,
                              preexec_fn=die_with_parent)
    deliverer = Deliverer(DeliveryConfig(allow_private=True))
    try:
        url = f"http://localhost:{port}/t/bench/1"
        deadline = time.monotonic() + 30
        while deliverer.send(delivery_id="probe", attempt=1, method="GET", url=url, headers={}, body=None,
                             timeout_s=5).status_code != 200:
            if time.monotonic() > deadline or target.poll() is not None:
                raise RuntimeError("the target did not start")
            time.sleep(0.05)
        for allowed_hosts in CASES.values():
            measure(deliverer, url, allowed_hosts, 200)  # warm: connections made, code paths run
        print(f"Deliverer.send CPU per send ({args.sends} sends per case, one thread, keep-alive, local target)")
        results: dict[str, list[float]] = {name: [] for name in CASES}
        for round_ in range(args.rounds):
            for name, allowed_hosts in CASES.items():
                results[name].append(measure(deliverer, url, allowed_hosts, args.sends))
                print(f"  round {round_ + 1}: {name:<26} {results[name][-1]:6.0f} us", flush=True)
        plain = min(results["plain (no allowlist)"])
        print("best of the rounds:")
        for name, figures in results.items():
            print(f"  {name:<26} {min(figures):6.0f} us  ({min(figures) - plain:+.0f} us vs plain)")
    finally:
        deliverer.close()
        target.kill()
        target.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
