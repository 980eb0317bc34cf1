"""The simulator tests' shared scenario (tests/support/sim_scenarios.py)."""

import pytest

from broker.sim.scenario import load_scenario
from tests.support.sim_scenarios import scenario_file


@pytest.fixture()
def small(tmp_path):
    return load_scenario(scenario_file(tmp_path))
