"""The ns-data wheel works alone: built, installed where no other ns package is, and used.

`make isolated` tests ns-data in a workspace environment; this test goes one step further and
uses the built wheel, as another project would after `pip install ns_data-*.whl`:

1. `uv build --package ns-data --offline` writes the sdist, then builds the wheel from the sdist
   (so the sdist is complete too), into a temporary folder.
2. A fresh `uv venv` (the workspace's Python, no system site-packages) receives the third-party
   packages that `uv.lock` pins for ns-data alone (`uv export --package ns-data
   --no-emit-workspace --format pylock.toml`), installed `--offline` from uv's cache, which
   `make setup` (`uv sync --locked`, run by `make test`) fills; uv hardlinks them, so the
   environment takes about a second, not a download of torch.
3. The wheel is installed with uv's real dependency resolution (not `--no-deps`), still
   `--offline`, with the workspace's `override-dependencies` (opencv-python → the headless build
   already in the lock, as the workspace resolves it): every `Requires-Dist` of the wheel must be
   met by the locked set and nothing else may be installed. A requirement on a sibling
   (ns-models...) fails here: the lock export holds no ns package and the install is offline.
4. In that environment (`python -I`: no PYTHONPATH, no user site, not the repository), a script
   shards a folder of JPEGs, reads every sample back, runs the numba filter-and-balance kernels
   (`select`), checks that `ns_train`, `ns_models` and `ns_cli` cannot be imported,
   and the README's example prints what the README says.

Skipped, with the reason, only when uv cannot be found; an empty cache fails with its fix.
About 15 s on an idle 2-core machine, most of it numba compiling the kernels in the new
environment.
"""

from __future__ import annotations

import email
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ns-data", "ns-models", "ns-train", "ns-cli")
SIBLINGS = ("ns_train", "ns_models", "ns_cli")


def pyproject(package: str) -> dict[str, Any]:
    return tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())


def find_uv() -> list[str] | None:
    """uv's command: $UV (set by `uv run`), `uv` on PATH, or `python3 -m uv` (as the Makefile)."""
    for candidate in (os.environ.get("UV"), shutil.which("uv")):
        if candidate and Path(candidate).is_file():
            return [candidate]
    python3 = shutil.which("python3")
    probe = [python3, "-m", "uv", "--version"] if python3 else None
    if probe and subprocess.run(probe, capture_output=True).returncode == 0:
        return probe[:3]
    return None


@dataclass(frozen=True, slots=True)
class WheelEnv:
    """The built ns-data wheel and sdist, and the fresh environment the wheel is installed in."""

    wheel: Path
    sdist: Path
    python: Path
    work: Path


def uv_run(uv: list[str], *args: str | Path, cwd: Path = ROOT) -> str:
    """Run uv offline (never the workspace's own environment); fail with its output."""
    ignored = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
    env = {k: v for k, v in os.environ.items() if k not in ignored}
    done = subprocess.run(
        [*uv, *map(str, args)],
        cwd=cwd,
        env={**env, "UV_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode:
        pytest.fail(
            f"`uv {' '.join(map(str, args))}` failed (exit {done.returncode}); if a package is "
            f"missing from uv's cache, run `make setup` first:\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WheelEnv]:
    uv = find_uv()
    if uv is None:
        pytest.skip(
            "uv is not installed (neither $UV, `uv` on PATH nor `python3 -m uv`): run `make setup`"
        )
    work = tmp_path_factory.mktemp("wheel")
    dist, venv = work / "dist", work / "venv"
    uv_run(uv, "build", "--offline", "--package", "ns-data", "--out-dir", dist)
    (wheel,) = dist.glob("ns_data-*.whl")
    (sdist,) = dist.glob("ns_data-*.tar.gz")
    lock = work / "pylock.toml"
    uv_run(uv, "export", "--frozen", "--offline", "--package", "ns-data", "--no-emit-workspace",
           "--no-dev", "--format", "pylock.toml", "--output-file", lock)  # fmt: skip
    assert '\nname = "ns-' not in lock.read_text(), "the lock export holds an ns package"
    uv_run(uv, "venv", "--offline", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    uv_run(uv, "pip", "install", "--offline", "--python", python, "-r", lock)
    overrides = work / "overrides.txt"
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    overrides.write_text("\n".join(root["tool"]["uv"].get("override-dependencies", [])) + "\n")
    log = uv_run(
        uv, "pip", "install", "--offline", "--python", python, "--overrides", overrides, wheel
    )
    installed = re.findall(r"^ \+ (\S+)==", log, flags=re.MULTILINE)
    assert installed == ["ns-data"], f"the wheel pulled in more than the lock holds:\n{log}"
    yield WheelEnv(wheel=wheel, sdist=sdist, python=python, work=work)
    shutil.rmtree(work, ignore_errors=True)  # ~20,000 hardlinks: not left for pytest to prune


def run_in_env(env: WheelEnv, script: str, cwd: Path, *args: str) -> str:
    """Run `script` with the wheel environment's Python, isolated from the repository."""
    cwd.mkdir(parents=True, exist_ok=True)
    path = cwd / "script.py"
    path.write_text(script)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run(
        [str(env.python), "-I", str(path), *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        f"{path} failed in the wheel environment:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


ALONE = r"""
import importlib.util, io, json, sys
from importlib.metadata import distributions, version
from pathlib import Path

import numpy as np
from PIL import Image

import ns_data
from ns_data.labels.selection import select
from ns_data.shards.reader import ShardSet
from ns_data.ingest.pipeline import ShardConfig, shard_images

rng = np.random.default_rng(0)
images = {}
for i in range(12):  # an ImageFolder tree: two classes of noisy JPEGs of different sizes
    path = Path("photos") / ("cat" if i % 2 else "dog") / f"img{i:02d}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 255, (8 + i, 10 + i, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")
    images[path.relative_to("photos").with_suffix("").as_posix()] = path.read_bytes()
report = shard_images("photos", "shards/train", ShardConfig(max_count=5, workers=1))
shards = ShardSet("shards/train")
keys = sorted(images)  # sorted traversal: row = position in the sorted keys
read_back = [shards.read_image(row) == images[key] for row, key in enumerate(keys)]

top_class = rng.integers(0, 7, 20_000).astype(np.int16)
confidence = rng.random(20_000).astype(np.float16)  # float16 only: one compilation
copies = select(top_class, confidence, num_classes=7, threshold=0.3, per_class=2_000)
small = select(np.array([0, 0, 0, 0, 1, 1], np.int16),
               np.array([0.9, 0.2, 0.8, 0.7, 0.95, 0.6], np.float16),
               num_classes=2, threshold=0.3, per_class=3)

print(json.dumps({
    "prefix": sys.prefix,
    "file": ns_data.__file__,
    "version": version("ns-data"),
    "module_version": ns_data.__version__,
    "ns_distributions": sorted(d.metadata["Name"] for d in distributions()
                               if d.metadata["Name"].startswith("ns-")),
    "siblings": {name: importlib.util.find_spec(name) is not None for name in sys.argv[2:]},
    "repo_on_path": [p for p in sys.path if p.startswith(sys.argv[1])],
    "classes": shards.manifest.classes,
    "shards": len(shards.manifest.shards),
    "rows": len(shards),
    "labels": shards.labels.tolist(),
    "read_back": read_back,
    "rejected": report.rejected,
    "copies_per_class": np.bincount(top_class, weights=copies, minlength=7).astype(int).tolist(),
    "kept_under_threshold": int(copies[confidence < 0.3].sum()),
    "small": small.tolist(),
}))
"""


def test_ns_data_wheel_works_alone(wheel_env: WheelEnv) -> None:
    out = json.loads(run_in_env(wheel_env, ALONE, wheel_env.work / "alone", str(ROOT), *SIBLINGS))
    assert Path(out["file"]).is_relative_to(out["prefix"]), "ns_data is not the wheel's"
    assert out["repo_on_path"] == []
    assert out["version"] == out["module_version"] == pyproject("ns-data")["project"]["version"]
    assert out["ns_distributions"] == ["ns-data"]
    assert out["siblings"] == dict.fromkeys(SIBLINGS, False), "a sibling package is importable"
    assert out["classes"] == ["cat", "dog"]
    assert (out["shards"], out["rows"], out["rejected"]) == (3, 12, 0)
    assert out["labels"] == [0] * 6 + [1] * 6
    assert all(out["read_back"]), "a sample read back differs from its JPEG"
    assert out["copies_per_class"] == [2_000] * 7
    assert out["kept_under_threshold"] == 0
    assert out["small"] == [1, 0, 1, 1, 2, 1]


def test_ns_data_readme_example_runs_from_the_wheel(wheel_env: WheelEnv) -> None:
    readme = (ROOT / "packages/ns-data/README.md").read_text()
    code, printed = re.search(
        r"```python\n(.*?)```\n\nprints\n\n```text\n(.*?)```", readme, re.S
    ).groups()
    assert run_in_env(wheel_env, code, wheel_env.work / "readme") == printed


def test_ns_data_wheel_metadata(wheel_env: WheelEnv) -> None:
    expected = pyproject("ns-data")["project"]
    with zipfile.ZipFile(wheel_env.wheel) as wheel:
        names = wheel.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(wheel.read(metadata_name))
    assert metadata["Name"] == "ns-data"
    assert metadata["Version"] == expected["version"]
    assert metadata["License-Expression"] == "MIT"
    assert f"ns_data-{expected['version']}.dist-info/licenses/LICENSE" in names
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert metadata.get_payload().startswith("# ns-data\n")
    assert any(url.startswith("Repository, https://") for url in metadata.get_all("Project-URL"))
    requires = [
        re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] for r in metadata.get_all("Requires-Dist")
    ]
    assert not [r for r in requires if r.startswith("ns-")], requires
    assert "ns_data/labels/kernels.py" in names
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]
    with tarfile.open(wheel_env.sdist) as sdist:
        members = {m.split("/", 1)[1] for m in sdist.getnames() if "/" in m}
    assert {"README.md", "LICENSE", "pyproject.toml", "src/ns_data/labels/selection.py"} <= members


def test_one_version_one_license_one_home() -> None:
    """The four packages share a version (pinned between them), the MIT license and the URLs."""
    projects = {name: pyproject(name)["project"] for name in PACKAGES}
    shared = projects["ns-data"]["version"]
    license_text = (ROOT / "LICENSE").read_text()
    for name, project in projects.items():
        folder = ROOT / "packages" / name
        assert project["version"] == shared, f"{name} is at {project['version']}, not {shared}"
        assert version(name) == shared, f"{name}'s installed metadata is stale: run `make setup`"
        assert project["license"] == "MIT"
        assert project["license-files"] == ["LICENSE"]
        assert (folder / "LICENSE").read_text() == license_text, f"{folder}/LICENSE is not LICENSE"
        assert project["readme"] == "README.md"
        assert (folder / "README.md").read_text().startswith(f"# {name}\n")
        assert project["urls"] == projects["ns-data"]["urls"]
        pins = [r for r in project["dependencies"] if r.startswith("ns-")]
        assert all(r.endswith(f"=={shared}") for r in pins), f"{name}: pin {pins} to =={shared}"
