"""What the numbers were measured on: CPU, usable cores, GPU, versions, load average."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ns_data.cpus import usable_cores

PACKAGES = (
    "ns-train",
    "torch",
    "torchvision",
    "timm",
    "nvidia-dali-cuda130",
    "webdataset",
    "numba",
    "numpy",
    "pillow",
)


def describe() -> dict[str, Any]:
    """The machine and software of this run (the load average is added by the caller)."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "host": host_name(),
        "cpu": cpu_model(),
        "usable_cores": usable_cores(),
        "logical_cpus": os.cpu_count(),
        "memory_gib": round(_memory_bytes() / 2**30, 1),
        "gpu": gpu,
        "gpus": torch.cuda.device_count() if gpu else 0,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in PACKAGES},
    }


def host_name() -> str:
    """The short host name, safe as a file name."""
    name = socket.gethostname().split(".")[0] or "host"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else lscpu, else the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        found = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in found.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the system has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None
