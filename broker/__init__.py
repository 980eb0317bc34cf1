"""TPV Broker: data-aware ranking of Galaxy job destinations, ARBO and task reprioritization."""

from importlib.metadata import PackageNotFoundError, version

# The version lives in one place, pyproject.toml: what is installed is what the broker reports
# (/health), so a deploy or a rollback can be checked on the running service.
try:
    __version__ = version("tpv-broker")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
