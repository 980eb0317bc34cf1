"""TPV Broker: data-aware ranking of Galaxy job destinations, ARBO and task reprioritization."""

__version__ = "0.1.0"
