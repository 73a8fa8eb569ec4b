"""Does ns slow down in proportion when it shares the machine? A training step loop alone and
beside a fixed CPU load, for each thread setting.

The step loop is EfficientNet-B0 at the demo's 32 px, batch 32, SGD, on random tensors (the
loader is left out: this measures the threads of torch's kernels). The load is N processes that
each spin one core in pure Python. Each setting runs in a fresh process, because OpenMP reads its
environment once, when torch loads it; settings and loads are interleaved over `--repeats`
rounds and the median is reported. "Fair" is the rate the loop would keep if it got the cores the
load leaves it: alone × (cores - load) / cores.

    uv run --frozen python bench/bench_contention.py --load 1 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

STEP_LOOP = """
import json, sys, time, timm, torch
threads = int(sys.argv[1])
if threads:
    torch.set_num_threads(threads)
model = timm.create_model("efficientnet_b0", num_classes=10)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
images, labels = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
for step in range(23):
    if step == 3:
        started = time.perf_counter()
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(images), labels).backward()
    optimizer.step()
print(json.dumps({"images_per_s": 20 * 32 / (time.perf_counter() - started),
                  "threads": torch.get_num_threads()}))
"""

SETTINGS = {
    "torch default threads": ({}, 0),
    "1 thread": ({}, 1),
    "default threads, OMP_WAIT_POLICY=PASSIVE": ({"OMP_WAIT_POLICY": "PASSIVE"}, 0),
    "threads = usable cores - load": ({}, -1),
}


def spin(stop_at: float) -> None:
    while time.monotonic() < stop_at:
        pass


def step_rate(env: dict[str, str], threads: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", STEP_LOOP, str(threads)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.splitlines()[-1])


def measure(load: int, env: dict[str, str], threads: int) -> dict[str, float]:
    """The loop's rate with `load` spinning processes beside it."""
    spinners = [
        multiprocessing.Process(target=spin, args=(time.monotonic() + 600,)) for _ in range(load)
    ]
    for process in spinners:
        process.start()
    try:
        return step_rate(env, threads)
    finally:
        for process in spinners:
            process.terminate()
            process.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", type=int, default=1, help="spinning processes beside the loop")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    rates: dict[tuple[str, int], list[float]] = {}
    used: dict[tuple[str, int], int] = {}
    for _ in range(args.repeats):
        for name, (env, threads) in SETTINGS.items():
            for load in (0, args.load):
                chosen = max(1, cores - load) if threads == -1 else threads
                found = measure(load, env, chosen)
                rates.setdefault((name, load), []).append(found["images_per_s"])
                used[(name, load)] = int(found["threads"])
    print(f"{cores} usable cores ({os.uname().machine}); load: {args.load} spinning processes\n")
    print(
        "| setting | threads alone / loaded | alone img/s | loaded img/s | slowdown | fair slowdown |"
    )
    print("|---|---|---:|---:|---:|---:|")
    fair = cores / max(1, cores - args.load)
    for name in SETTINGS:
        alone = statistics.median(rates[(name, 0)])
        loaded = statistics.median(rates[(name, args.load)])
        print(
            f"| {name} | {used[(name, 0)]} / {used[(name, args.load)]} | {alone:.0f} | "
            f"{loaded:.0f} | {alone / loaded:.2f}× | {fair:.2f}× |"
        )


if __name__ == "__main__":
    main()
