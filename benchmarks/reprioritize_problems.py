"""Objectives of the reprioritization benchmark (``benchmarks.reprioritize``): known surfaces.

Each problem draws, per seed, its surface (where a surface has random parts) and nothing else;
the points to evaluate are drawn by the benchmark. All are minimised.

- ``ackley``: the reference experiment (ParSocial 2023), 4-D Ackley centred in its box. Its
  global shape is a bowl around the centre of the sampling box, so a quadratic regression on
  [1, x, x^2] already ranks the pending points almost as well as an oracle: the "bowl shortcut".
- ``ackley_shifted``: the same function with its optimum moved, per seed, to a random point far
  off the centre (each coordinate at 50-85 % of the half-width, random sign). Outside the basin
  Ackley is a flat plateau, and the basin is cut by the box edge: a bowl fitted to the plateau's
  samples points nowhere in particular.
- ``wells``: a real-world-like surface in 6-D: a gently tilted plane with ten Gaussian wells of
  random centres, widths and depths (the deepest is not the widest), as the response of a
  simulation with several regimes tends to look. No global bowl exists; a quadratic finds the
  widest well at best.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ACKLEY_BOUND = 32.768


@dataclass(frozen=True)
class Problem:
    """A surface to minimise over the box [low, high]^dim."""

    name: str
    dim: int
    low: float
    high: float
    surface: Callable[[int], Callable[[np.ndarray], np.ndarray]]  # seed -> f(X) row-wise


def ackley(X: np.ndarray) -> np.ndarray:
    """The d-dimensional Ackley function (a=20, b=0.2, c=2 pi), row-wise; minimum 0 at 0."""
    d = X.shape[1]
    return (
        -20.0 * np.exp(-0.2 * np.sqrt(np.sum(X**2, axis=1) / d))
        - np.exp(np.sum(np.cos(2 * np.pi * X), axis=1) / d)
        + 20.0
        + np.e
    )


def _ackley(seed: int) -> Callable[[np.ndarray], np.ndarray]:
    return ackley


def _ackley_shifted(seed: int, dim: int = 4) -> Callable[[np.ndarray], np.ndarray]:
    rng = np.random.default_rng([seed, 1])
    centre = rng.choice([-1.0, 1.0], dim) * rng.uniform(0.5, 0.85, dim) * ACKLEY_BOUND
    return lambda X: ackley(X - centre)


def _wells(seed: int, dim: int = 6, n_wells: int = 10) -> Callable[[np.ndarray], np.ndarray]:
    rng = np.random.default_rng([seed, 2])
    centres = rng.uniform(0.1, 0.9, (n_wells, dim))
    widths = rng.uniform(0.12, 0.35, n_wells)
    depths = rng.uniform(0.3, 1.0, n_wells)
    tilt = rng.normal(0, 0.1, dim)

    def f(X: np.ndarray) -> np.ndarray:
        d2 = ((X[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        wells = (depths * np.exp(-d2 / (2 * widths**2))).sum(axis=1)
        return X @ tilt - wells

    return f


PROBLEMS = {
    p.name: p
    for p in (
        Problem("ackley", 4, -ACKLEY_BOUND, ACKLEY_BOUND, _ackley),
        Problem("ackley_shifted", 4, -ACKLEY_BOUND, ACKLEY_BOUND, _ackley_shifted),
        Problem("wells", 6, 0.0, 1.0, _wells),
    )
}
