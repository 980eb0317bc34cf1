"""A surrogate's prediction (posterior mean and standard deviation) and the closed-form expected
improvement over it: the part of reprioritization that turns a prediction into a priority.

Apart from the Gaussian process (``broker.reprioritize.gp``) because neither depends on how the
prediction was fitted; the service (``broker.reprioritize.service``) scores with these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

__all__ = ["Posterior", "expected_improvement"]


@dataclass(frozen=True)
class Posterior:
    """Posterior mean and standard deviation (of the latent function, in the units of y)."""

    mean: np.ndarray
    std: np.ndarray


def expected_improvement(
    prediction: Posterior, best: float, *, minimize: bool = True, xi: float = 0.0
) -> np.ndarray:
    """Closed-form expected improvement over ``best`` for each predicted point.

    ``xi`` is a margin in the units of y that a point must beat ``best`` by to count; with zero
    std the EI reduces to the plain improvement, so certain points are still ordered sensibly.
    """
    mean, std = prediction.mean, prediction.std
    improvement = (best - mean - xi) if minimize else (mean - best - xi)
    ei = np.maximum(improvement, 0.0)
    positive = std > 0
    z = improvement[positive] / std[positive]
    ei[positive] = improvement[positive] * norm.cdf(z) + std[positive] * norm.pdf(z)
    return ei
