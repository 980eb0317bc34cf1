"""How a Galaxy attempt's run goes: its true run time at a site, and whether (and when) it fails.

The random part was drawn with the job (`Job.run_factor`, `Job.fail_u`, common random numbers);
this module applies the scenario to it. The engine asks when an attempt starts; the oracle and
the lower bound ask the same questions ahead of time, so both read the one answer.
"""

from __future__ import annotations

from broker.sim.scenario import Scenario
from broker.sim.workload import HOUR, Job


class RunModel:
    """The scenario's truth about runs; `start` is the measured window's start (absolute
    seconds), which the failure overrides' hours count from."""

    def __init__(self, scenario: Scenario, start: float):
        self.sc = scenario
        self.start = start

    def failure_probability(self, site: str, tool: str, t: float) -> tuple[float, float]:
        """(probability that an attempt of `tool` starting at `site` at `t` fails, the fraction
        of its run after which it does): an override in force wins, else the site's and the
        tool's rates combined as independent causes."""
        rel_h = (t - self.start) / HOUR
        for f in self.sc.failures:
            if f.site == site and f.tool == tool and f.from_h <= rel_h < f.to_h:
                return f.probability, f.after_fraction
        s, k = self.sc.sites[site].failure_rate, self.sc.tools[tool].failure_rate
        return 1 - (1 - s) * (1 - k), 0.5

    def run_s(self, job: Job, site: str) -> float:
        """The job's true run time at `site` (a whole, successful run)."""
        return self.sc.tools[job.tool].run_median_s * job.run_factor * self.sc.sites[site].speed

    def outcome(
        self, job: Job, attempt: int, site: str, run_s: float, t: float
    ) -> tuple[bool, float]:
        """Whether this attempt of `job` fails if it starts at `site` at `t`, and how long it
        then runs (a failure comes part-way through the run)."""
        p, after = self.failure_probability(site, job.tool, t)
        fails = job.fail_u[attempt] < p
        return fails, run_s * after if fails else run_s
