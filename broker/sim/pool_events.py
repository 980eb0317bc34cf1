"""What the HTCondor pools do in the simulation: negotiation cycles that start the idle jobs that
fit (queue order, first machine, backfill), jobs that end, outages that lose the running jobs,
the local users' jobs that share each queue, and the busy cores integrated for utilisation.

A mixin of `broker.sim.engine.Simulation`, kept apart so that the pools' side reads on its own;
the attributes below are the simulation's. The oracle replays `negotiate` on a copy of a pool
(`broker.sim.oracle`): a change to the rules here is a change there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from broker.sim.events import BG_ARRIVE, END, LOST, NEGOTIATE
from broker.sim.pools import SiteState, Task
from metric_contract.units import MB_PER_GB

if TYPE_CHECKING:
    import numpy as np

    from broker.sim.runs import RunModel
    from broker.sim.scenario import Scenario

BG_MEM_MB_PER_CORE = 4 * MB_PER_GB
BG_MEAN_RUN_S = 1800.0


class PoolEvents:
    """The HTCondor pools' side of the simulation (see the module docstring)."""

    sc: Scenario
    now: float
    start: float
    window_end: float
    runs: RunModel
    sites: dict[str, SiteState]
    galaxy_queued: dict[str, int]
    galaxy_running: dict[str, int]
    max_overcommit: float
    busy_integral: float
    _busy_t: float
    _bg_rng: dict[str, np.random.Generator]
    at: Callable[..., None]
    attempt_over: Callable[[Task, bool], None]

    def want_negotiation(self, site: SiteState) -> None:
        """Ask for the pool's next negotiation cycle, if it has idle jobs and none is due."""
        if not site.up or not site.idle or site.negotiation_due is not None:
            return
        due = site.next_negotiation(self.now, self.sc.negotiation_interval_s)
        site.negotiation_due = due
        self.at(due, NEGOTIATE, site)

    def negotiate(self, site: SiteState) -> None:
        """One negotiation cycle: start every idle job that fits, in queue order."""
        site.negotiation_due = None
        if not site.up:
            return
        waiting = []
        most_free = site.machines.most_cores()
        for task in site.idle:
            i = site.fits_anywhere(task) if task.cores <= most_free else -1
            if i < 0:
                waiting.append(task)
                continue
            self._account_busy()
            site.claim(task, i)
            self.max_overcommit = min(self.max_overcommit, site.machines.lowest())
            most_free = site.machines.most_cores()
            task.started = self.now
            task.state = "running"
            if task.job is not None:
                self.galaxy_queued[task.dest] -= 1
                self.galaxy_running[task.dest] += 1
                task.fails, duration = self.runs.outcome(
                    task.job, task.attempt, site.name, task.run_s, self.now
                )
            else:
                duration = task.run_s
            task.ends_at = self.now + duration
            self.at(task.ends_at, END, task)
        site.idle = waiting

    def _account_busy(self) -> None:
        """Integrate busy cores over the measured window (utilisation)."""
        lo, hi = max(self._busy_t, self.start), min(self.now, self.window_end)
        if hi > lo:
            busy = sum(s.busy_cores for s in self.sites.values())
            self.busy_integral += busy * (hi - lo)
        self._busy_t = self.now

    def staged(self, task: Task) -> None:
        """The attempt's inputs have arrived: it joins the pool's idle queue."""
        task.staged = self.now
        task.state = "idle"
        site = self.sites[task.site]
        del site.staging[task]
        site.idle.append(task)
        self.want_negotiation(site)

    def end(self, task: Task) -> None:
        if task.state != "running":
            return  # lost in an outage; LOST handles it
        site = self.sites[task.site]
        self._account_busy()
        site.release(task)
        task.ended = self.now
        if task.job is not None:
            self.galaxy_running[task.dest] -= 1
            self.attempt_over(task, not task.fails)
        self.want_negotiation(site)

    def outage(self, site: SiteState, starting: bool) -> None:
        if starting:
            site.up = False
            self._account_busy()
            # by start, ties in the order the negotiator started them (`SiteState.running`)
            for task in sorted(site.running, key=lambda t: t.started):
                site.release(task)
                task.state = "lost"
                task.ended = self.now
                if task.job is not None:
                    self.galaxy_running[task.dest] -= 1
                    self.at(self.now + self.sc.outage_detect_s, LOST, task)
        else:
            site.up = True
            self.want_negotiation(site)

    def background(self, site: SiteState) -> None:
        """A local user's job arrives (if the site is up) and the next one is scheduled:
        Poisson arrivals sized so the site's `background_load` share of cores stays busy."""
        conf = site.conf
        if conf.background_load <= 0:
            return
        rng = self._bg_rng[site.name]
        cores = min(conf.cores_per_machine, int(rng.integers(1, 5)))
        run = BG_MEAN_RUN_S * math.exp(rng.normal(-0.5, 1.0))  # lognormal, mean 1800 s
        if site.up:
            task = Task(cores, cores * BG_MEM_MB_PER_CORE, 0, run, state="idle", site=site.name)
            site.idle.append(task)
            self.want_negotiation(site)
        rate = conf.background_load * conf.cores / (2.5 * BG_MEAN_RUN_S)
        self.at(self.now + rng.exponential(1 / rate), BG_ARRIVE, site)
