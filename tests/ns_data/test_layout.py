"""The package's public names and its 0.2 module paths (kept for one version)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import ns_data
from ns_data.moved import MOVED_MODULES


def test_public_names_resolve_to_their_homes() -> None:
    for name in ns_data.__all__:
        home = importlib.import_module(f"ns_data.{ns_data._MODULE_OF[name]}")
        assert getattr(ns_data, name) is getattr(home, name)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        ns_data.nothing  # noqa: B018


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_old_module_paths_import_the_new_modules(old: str) -> None:
    new = importlib.import_module(f"ns_data.{MOVED_MODULES[old]}")
    sys.modules.pop(f"ns_data.{old}", None)
    with pytest.warns(
        DeprecationWarning, match=f"ns_data.{old} moved to ns_data.{MOVED_MODULES[old]}"
    ):
        assert importlib.import_module(f"ns_data.{old}") is new


def test_import_ns_data_loads_no_torch() -> None:
    code = "import sys, ns_data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
