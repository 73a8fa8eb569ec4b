"""Does a training step loop slow down in proportion when it shares the machine?

The step loop (the model at a small side on random tensors, SGD; no loader: this measures the
threads of torch's kernels) runs alone and beside a fixed CPU load, half the usable cores (at
least one) each spun by a pure-Python process, for each thread setting. OpenMP reads its
environment once, when torch loads it, so the settings of this process's environment run here,
and OMP_WAIT_POLICY=PASSIVE in a process of its own (at the full scale only: that process pays
the imports of torch and timm); each interleaves its settings and loads round by round. The
ratio is loaded / alone; a fair share would be (cores - load) / cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from ns_data.cpus import usable_cores
from ns_train.benchmarks.context import Context
from ns_train.benchmarks.results import Section
from ns_train.benchmarks.rounds import Candidate, Metrics, rows_of

ENVIRONMENTS: dict[str, dict[str, str]] = {
    "": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}
SETTINGS: dict[str, tuple[str, str]] = {
    "torch default threads": ("", "default"),
    "1 thread": ("", "1"),
    "threads = usable cores - load": ("", "free"),
    "default threads, OMP_WAIT_POLICY=PASSIVE": ("OMP_WAIT_POLICY=PASSIVE", "default"),
}
"""Setting → (environment, threads: default, 1 or free = the cores the load leaves)."""

CHILD = """
import json, sys
from ns_train.benchmarks.contention import step_rates
step_rates(json.loads(sys.argv[1]), lambda record: print(json.dumps(record), flush=True))
"""
"""The step loop in a process of its own, for an environment that OpenMP must read at start."""


def step_rates(job: dict[str, Any], report: Callable[[dict[str, Any]], None]) -> None:
    """Per round, setting and load (none, then `job["load"]` spinning processes): the step
    loop's images/s, passed to `report` with the setting, the load and the threads used."""
    import timm
    import torch

    default = torch.get_num_threads()
    model = timm.create_model(job["model"], num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    size, batch, steps = job["size"], job["batch"], job["steps"]
    images, labels = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))

    def rate() -> float:
        started = time.perf_counter()
        for step in range(steps + 2):
            if step == 2:
                started = time.perf_counter()
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(images), labels).backward()
            optimizer.step()
        return steps * batch / (time.perf_counter() - started)

    spin = [sys.executable, "-c", "while True: pass"]
    try:
        for _ in range(job["rounds"]):
            for name, threads in job["settings"]:
                for load in (0, job["load"]):
                    n = {"default": default, "1": 1, "free": max(1, job["cores"] - load)}[threads]
                    torch.set_num_threads(n)
                    spinners = [subprocess.Popen(spin) for _ in range(load)]
                    try:
                        time.sleep(0.05 * bool(load))
                        found = rate()
                    finally:
                        for process in spinners:
                            process.kill()
                            process.wait()
                    report({"setting": name, "load": load, "rate": found, "threads": n})
    finally:
        torch.set_num_threads(default)


def run(ctx: Context) -> Section:
    cores = usable_cores()
    load = max(1, cores // 2)
    sizes = ctx.sizes
    ctx.begin("contention")
    runs: dict[str, list[Metrics]] = {}
    threads: dict[str, int] = {}
    environments = ENVIRONMENTS if sizes.thorough else {"": {}}
    chosen = {name: s for name, s in SETTINGS.items() if s[0] in environments}
    ctx.expect(ctx.settings.rounds * len(chosen) * 2)
    for env_name, env in environments.items():
        settings = [(name, t) for name, (e, t) in chosen.items() if e == env_name]
        job = {
            "model": ctx.settings.model,
            "size": sizes.step_size,
            "batch": sizes.step_batch,
            "steps": sizes.step_count,
            "rounds": ctx.settings.rounds,
            "settings": settings,
            "load": load,
            "cores": cores,
        }

        def record(found: dict[str, Any]) -> None:
            ctx.tick(f"{found['setting']}, load {found['load']}")
            key = _name(found["setting"], int(found["load"]), load)
            runs.setdefault(key, []).append({"images/s": found["rate"]})
            threads[key] = int(found["threads"])

        if env:
            _child(job, env, record)
        else:  # this process's own environment: no second start-up
            step_rates(job, record)
    candidates = []
    for name in chosen:
        alone = _name(name, 0, load)
        candidates += [
            Candidate(alone, _unused),
            Candidate(_name(name, load, load), _unused, alone),
        ]
    rows = rows_of(candidates, runs, {"images/s": "images/s"})
    for row in rows:
        count = threads[row.name]
        row.note = f"{count} thread" + ("s" if count > 1 else "")
    fair = (cores - load) / cores
    return Section(
        "contention",
        "a training step loop alone and beside a fixed CPU load, per thread setting",
        {
            "model": ctx.settings.model,
            "image side": sizes.step_size,
            "batch": sizes.step_batch,
            "timed steps": sizes.step_count,
            "usable cores": cores,
            "load": f"{load} spinning processes",
        },
        rows,
        [f"a fair share beside the load would be {fair:.2f}× of alone (× baseline of loaded rows)"]
        + ([] if sizes.thorough else ["OMP_WAIT_POLICY=PASSIVE left out: full scale only"]),
    )


def _name(setting: str, load: int, of: int) -> str:
    busy = f"{of} busy core" + ("s" if of > 1 else "")
    return f"{setting}, alone" if load == 0 else f"{setting}, beside {busy}"


def _unused() -> Metrics:
    raise AssertionError("contention runs in a child process")


def _child(
    job: dict[str, Any], env: dict[str, str], record: Callable[[dict[str, Any]], None]
) -> None:
    """Run the step loop in a process with `env` added; `record` each measurement as it comes."""
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(job)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        for line in child.stdout:
            record(json.loads(line))
        errors = child.stderr.read()
    if child.returncode != 0:
        from ns_train.errors import TrainError

        last = errors.strip().splitlines()[-1] if errors.strip() else f"exit {child.returncode}"
        raise TrainError(f"the contention step loop failed: {last}")
