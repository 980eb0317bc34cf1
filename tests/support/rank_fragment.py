"""The role tpv_broker_rank's fragment, rendered the way the role renders it (examples/tpv)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from tests.support.paths import ROOT


def render_fragment(path: Path, **overrides: Any) -> Path:
    """Write the role's template rendered with its defaults plus `overrides` (examples/tpv)."""
    spec = importlib.util.spec_from_file_location("tpv_render", ROOT / "examples/tpv/render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path.write_text(module.render(overrides))
    return path
