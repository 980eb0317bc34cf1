"""Where things are in the checkout, for tests and benchmarks that start files of it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The TPV tests' own configuration: the administrator's existing TPV config (tpv-base.yml) and
# Galaxy's job configuration that loads it.
TPV_FIXTURES = ROOT / "tests" / "tpv" / "fixtures"
