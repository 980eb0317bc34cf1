"""The carbon term: what a job's energy at a destination emits, priced in seconds.

    carbon(d) = carbon_s_per_kg * kg(d)
    kg(d)     = run(d) [h] * (cores * watts_per_core(d) + gpus * watts_per_gpu(d)) [kW]
                * intensity(site of d) [g CO2eq / kWh] / 1000

It is a cost of every attempt, like transfer, wait and run, so the expected time divides it by
P_success with them (a failed attempt has burnt its energy too). The exchange rate is the
administrator's (`ranking.carbon_s_per_kg`), default 0: then it changes no answer and costs a
request nothing, and the explanation still shows each candidate's kg.

The intensity is the site's newest `pulsar_carbon_intensity` point younger than
`metrics.carbon_staleness_s`. A site without one is given the mean of the configured
destinations' sites that have one, so that it is neither rewarded nor punished for not
reporting (sites outside the config, another network's in a shared InfluxDB, do not count);
with none the term is 0.
Decided once per refresh (`derived`), like a pool's state.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from broker.metrics.series import CarbonIntensity

# run seconds x watts x g/kWh -> kg: s -> h (3600), W -> kW (1000), g -> kg (1000)
KG_PER_S_W_G = 1.0 / 3.6e9


@dataclass(frozen=True, slots=True)
class Carbon:
    """A destination's power figures and the intensity the ranking uses for it."""

    g_per_kwh: float  # the site's own, else the mean of the reporting sites', else 0
    watts_per_core: float
    watts_per_gpu: float
    reported: CarbonIntensity | None  # the site's own current figure; None: assumed
    sites_in_mean: int  # when assumed: how many sites the mean is over (0: nothing known)

    def note(
        self, kg: float, run_s: float, cores: float, gpus: float, rate: float, now: float
    ) -> str:
        """Where one attempt's `kg` (`kg_co2`) came from and what they cost, for the
        explanation."""
        if self.reported is not None:
            age = max(0.0, now - self.reported.time_s) / 60
            source = f"{self.reported.shape} point {age:.0f} min old"
        elif self.sites_in_mean:
            source = f"no current intensity for this site: the mean of {self.sites_in_mean} sites"
        else:
            source = "no current carbon intensity for any site"
        watts = cores * self.watts_per_core + gpus * self.watts_per_gpu
        text = (
            f"{kg:.3g} kg CO2eq = {run_s / 3600:.3g} h x {watts:.0f} W x "
            f"{self.g_per_kwh:.0f} g/kWh ({source})"
        )
        if rate <= 0:
            return text + "; not priced (ranking.carbon_s_per_kg is 0)"
        return text + f"; x {rate:g} s/kg = {kg * rate:.1f} s"


@dataclass(frozen=True)
class Intensities:
    """Every site's current carbon intensity, and the mean that stands in for a silent site."""

    current: Mapping[str, CarbonIntensity]
    mean_g_per_kwh: float
    sites_in_mean: int

    @classmethod
    def of(
        cls,
        reported: Mapping[str, CarbonIntensity],
        staleness_s: float,
        now: float,
        sites: Collection[str],
    ) -> Intensities:
        """`sites`: the configured destinations' sites, the ones the mean is taken over (all
        reported sites when the config names none)."""
        current = {s: c for s, c in reported.items() if now - c.time_s <= staleness_s}
        known = [c.g_per_kwh for s, c in current.items() if s in sites or not sites]
        return cls(current, float(np.mean(known)) if known else 0.0, len(known))

    def at(self, site: str, watts_per_core: float, watts_per_gpu: float) -> Carbon:
        own = self.current.get(site)
        if own is not None:
            return Carbon(own.g_per_kwh, watts_per_core, watts_per_gpu, own, 0)
        return Carbon(self.mean_g_per_kwh, watts_per_core, watts_per_gpu, None, self.sites_in_mean)


def carbon_columns(carbons: list[Carbon]) -> NDArray[np.float64]:
    """Per candidate (rows): intensity, watts per core, watts per GPU, read-only."""
    columns = np.array(
        [(c.g_per_kwh, c.watts_per_core, c.watts_per_gpu) for c in carbons], dtype=np.float64
    ).reshape(-1, 3)
    columns.flags.writeable = False
    return columns


def kg_co2(
    columns: NDArray[np.float64], run_s: NDArray[np.float64], cores: float, gpus: float
) -> NDArray[np.float64]:
    """Every candidate's kg CO2eq for one attempt of `run_s` seconds (`columns`:
    `carbon_columns`); the carbon term is this times `ranking.carbon_s_per_kg`."""
    watts = cores * columns[:, 1] + gpus * columns[:, 2]
    return run_s * watts * columns[:, 0] * KG_PER_S_W_G
