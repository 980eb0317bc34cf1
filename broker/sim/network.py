"""The simulated Pulsar network: distances, true bandwidths, TPV's candidates and its order,
and the broker settings an administrator would write for this network.

Distances and the distance-to-bandwidth formula are the ranking's own
(`broker.ranking.transfer`): the true network is the broker's model of the scenario's shape
times a per-pair factor the broker does not know, so the two can differ only by that factor."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from broker.config import Settings, deep_merge
from broker.ranking.transfer import bandwidth_mb_s, distance_km
from broker.sim.scenario import Scenario, Site, Tool


@dataclass(frozen=True)
class Network:
    scenario: Scenario
    site_of_dest: dict[str, str]
    km: dict[tuple[str, str], float]  # (store, site) -> great-circle km
    mb_s: dict[tuple[str, str], float]  # (store, site) -> true MB/s

    @classmethod
    def build(cls, scenario: Scenario, rng: np.random.Generator) -> Network:
        bw = scenario.bandwidth
        shape = bw.model_shape()
        km, mb_s = {}, {}
        # Sorted iteration: the noise drawn for a pair does not depend on YAML order.
        for store in sorted(scenario.objectstores):
            s = scenario.objectstores[store]
            for site in sorted(scenario.sites):
                conf = scenario.sites[site]
                d = distance_km((s.latitude, s.longitude), (conf.latitude, conf.longitude))
                nominal = bandwidth_mb_s(shape, d)
                noise = math.exp(rng.normal(0.0, bw.noise_sigma)) if bw.noise_sigma else 1.0
                km[(store, site)] = d
                mb_s[(store, site)] = nominal * noise
        dests = {scenario.destination_of(site): site for site in scenario.sites}
        return cls(scenario, dests, km, mb_s)

    def is_local(self, store: str, site: str) -> bool:
        return store in self.scenario.sites[site].objectstores

    def transfer(self, datasets: list[tuple[str, float]], site: str) -> tuple[float, float, float]:
        """(seconds, bytes moved, bytes x km) to stage `datasets` [(store, bytes)] at `site`."""
        seconds = moved = bytes_km = 0.0
        for store, size in datasets:
            if size <= 0 or self.is_local(store, site):
                continue
            seconds += size / 1e6 / self.mb_s[(store, site)]
            moved += size
            bytes_km += size * self.km[(store, site)]
        return seconds, moved, bytes_km


def fits_machine(site: Site, tool: Tool) -> bool:
    """TPV's static filter (max_accepted_cores/mem/gpus): one machine can hold the job."""
    return (
        tool.cores <= site.cores_per_machine
        and tool.mem_gb <= site.memory_gb_per_machine
        and tool.gpus <= site.gpus_per_machine
    )


def tpv_scores(scenario: Scenario, tool_id: str) -> dict[str, int]:
    """TPV's tag score of each candidate destination of a tool (one that can hold the job),
    in config order: here the number of the tool's preferred tags the site carries."""
    tool = scenario.tools[tool_id]
    prefer = set(tool.prefer)
    return {
        scenario.destination_of(s): len(prefer & set(conf.tags))
        for s, conf in scenario.sites.items()
        if fits_machine(conf, tool)
    }


def tpv_order(scenario: Scenario, tool_id: str) -> list[str]:
    """TPV's candidates for a tool, in its default rank order: by score (most preferred tags
    first), then in the order the config lists them (Python's sort is stable)."""
    scores = tpv_scores(scenario, tool_id)
    return sorted(scores, key=lambda d: -scores[d])


def broker_settings(scenario: Scenario) -> Settings:
    """What an administrator writes for this network: each destination's site, coordinates,
    local object stores and features; the stores' coordinates; the bandwidth model's shape
    calibrated to the network (the per-pair noise is not known); scenario overrides last."""
    shape = scenario.bandwidth.model_shape()
    raw: dict = {
        "destinations": {
            scenario.destination_of(name): {
                "site": name,
                "latitude": s.latitude,
                "longitude": s.longitude,
                "objectstores": list(s.objectstores),
                "features": dict(s.features),
                "watts_per_core": s.watts_per_core,
                "watts_per_gpu": s.watts_per_gpu,
            }
            for name, s in scenario.sites.items()
        },
        "objectstores": {
            k: {"latitude": o.latitude, "longitude": o.longitude}
            for k, o in scenario.objectstores.items()
        },
        "ranking": {
            "bandwidth": shape.model_dump(include={"peak_mb_s", "half_distance_km", "floor_mb_s"})
        },
    }
    return Settings.model_validate(deep_merge(raw, scenario.broker))
