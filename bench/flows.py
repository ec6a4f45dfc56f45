"""Benchmark of flow control: a rate shared by two workers, and what the gates cost requests.

Run from the repository root, with the project's virtualenv:

    python -m bench.flows              # about 2 minutes on 2 cores
    python -m bench.flows --quick      # under a minute

It starts what bench.requests starts (its own Redis, the recording HTTP target, gunicorn with
htq) and two htq workers (`celery -A workers worker`, each `-c --concurrency`) plus beat, then
prints, measured in the same run:

1. Rate: `--rate` requests/s on one flow key (period 1 s), `rate * (--seconds + 2)` requests
   created at once: deliveries/s at the target over `--seconds` of steady state (after the first
   second's burst) against the rate, and the most deliveries any window of 0.9 s saw.
2. Overhead: end-to-end delivered requests/s of `--e2e` immediate requests without a flow key,
   and with a flow key whose limits never bind (rate and parallelism 10,000), in alternating
   rounds (`--rounds`), medians: what passing the gates costs a request that is not held back.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[0] = str(REPO)

import argparse  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from bench.requests import Bench, Sizes, _raise_exit, run_and_clean  # noqa: E402
from config.settings import load_settings  # noqa: E402

UNBINDING = {"rate": 10_000, "parallelism": 10_000}


class FlowBench(Bench):
    def start_htq_workers(self) -> None:
        for name in ("worker-1", "worker-2"):
            self.procs.start_worker(name, concurrency=self.args.concurrency, options=())
        self.procs.start_beat()
        for name in ("worker-1", "worker-2"):
            self.procs.wait_log(name, " ready.")
        self.procs.wait_log("beat", "beat: Starting")

    def run(self) -> None:
        self.say(f"bench.flows: 2 workers x -c {self.args.concurrency}, {os.cpu_count()} cores, load average "
                 f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        self.start()
        self.start_htq_workers()
        self.rate()
        self.overhead()

    def rate(self) -> None:
        rate, seconds = self.args.rate, self.args.seconds
        count = rate * (seconds + 2)
        self.say(f"\n1. Rate: {count} requests on one flow key at {rate}/s, shared by two workers")
        flow = {"key": "bench-rate", "rate": rate}
        self.create_batches([{**self.body("rate", n), "flow": flow} for n in range(count)])
        arrivals = sorted(at for _, at in self.arrivals("rate", count, seconds + 60))
        start = arrivals[0] + 1.5
        steady = [at for at in arrivals if start <= at < start + seconds]
        per_s = len(steady) / seconds
        # The rate's starts come in bursts a period apart; windows 100 ms short of it allow the
        # senders' jitter (a start granted at once is sent tens of ms later than one granted ahead).
        most = max(sum(1 for other in arrivals[i:i + 2 * rate] if other - at < 0.9) for i, at in enumerate(arrivals))
        error = (per_s - rate) / rate * 100
        self.say(f"  delivered {per_s:.1f}/s over {seconds} s of steady state against {rate}/s ({error:+.1f}%; "
                 f"target within 5%); the most in any 0.9 s window: {most}; {len(arrivals)}/{count} arrived")
        self.results["rate"] = {"per_s": per_s, "error_pct": error, "most_in_0_9s": most}

    def overhead(self) -> None:
        count = self.sizes.e2e
        self.say(f"\n2. Overhead: {count} immediate requests end to end, without and with a flow key that never "
                 f"binds, {self.args.rounds} alternating rounds")
        # A first round of each kind warms every process (connections, pools, caches); not counted.
        for kind, extra in (("none", {}), ("flow", {"flow": {"key": "bench-warm", **UNBINDING}})):
            self.create_batches([{**self.body(f"warm-{kind}", n), **extra} for n in range(self.sizes.warm)])
            self.arrivals(f"warm-{kind}", self.sizes.warm, 60)
        rates = {"none": [], "flow": []}
        for round_ in range(self.args.rounds):
            for kind in ("none", "flow") if round_ % 2 == 0 else ("flow", "none"):
                tag = f"e2e-{kind}-{round_}"
                extra = {"flow": {"key": f"bench-{round_}", **UNBINDING}} if kind == "flow" else {}
                self.connections_before = self.connections()
                started = time.time()
                self.create_batches([{**self.body(tag, n), **extra} for n in range(count)])
                created = time.time()
                figures = self._e2e_figures(f"round {round_ + 1}, {'flow key' if extra else 'no flow'}", tag,
                                            count, started, created)
                rates[kind].append(figures["rate_s"])
        none, flow = statistics.median(rates["none"]), statistics.median(rates["flow"])
        cost = (none - flow) / none * 100 if none else float("nan")
        self.say(f"  medians: no flow {none:.0f}/s, flow key {flow:.0f}/s: flow control costs {cost:.1f}% "
                 "(target at most 10%)")
        self.results["overhead"] = {"none": none, "flow": flow, "cost_pct": cost}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.flows", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--concurrency", type=int, default=load_settings({}).concurrency)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, help="steady seconds measured (20; quick 8)")
    parser.add_argument("--e2e", type=int, help="requests per overhead round (2000; quick 500)")
    parser.add_argument("--e2e-timeout", type=float, default=120.0)
    parser.add_argument("--rounds", type=int, help="overhead rounds of each kind (5; quick 2)")
    parser.add_argument("--horizon", type=float)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (8 if args.quick else 20)
    args.rounds = args.rounds or (2 if args.quick else 5)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    workdir = Path(tempfile.mkdtemp(prefix="htq-bench-flows-"))
    sizes = Sizes(api_warmup_s=0, api_duration_s=0, e2e=args.e2e or (500 if args.quick else 2000),
                  warm=500, late=0, late_spread_s=0, late_lead_s=0, pending=0)
    return run_and_clean(FlowBench(args, sizes, workdir), workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
