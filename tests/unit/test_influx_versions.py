"""The InfluxDB source against stand-ins of InfluxDB 2.x and 3.x Core's v1-compatible /query
(tests/support/influx_compat.py: requests checked as those versions' documentation says)."""

from __future__ import annotations

import base64
import time

import pytest

from broker.config import ConfigError, InfluxSettings, MetricsSettings, load_settings
from broker.metrics.influx import InfluxSource
from broker.metrics.view import SourceError
from metric_contract.measurements import CARBON, CLUSTER, OUTCOMES, QUEUE, RUNTIME
from tests.support.influx_compat import InfluxCompatServer
from tests.support.influx_network import TOOL, history_lines, usage_line

TOKEN = "apiToken-0123456789abcdef=="
# measurements written once a day (gxadmin's aggregates, job outcomes): one file a day
DAILY = {RUNTIME: 1, OUTCOMES: 1}
# what an administrator sets for InfluxDB 3: live metrics need minutes, aggregates 8 days
V3_LOOKBACKS = {CLUSTER: 900, QUEUE: 900}
# ... and per-attempt outcomes counted over a day, not 30 (a 30-day count spans too many files)
V3 = {"lookbacks_s": V3_LOOKBACKS, "attempt_window_s": 86400}


def fill(server: InfluxCompatServer) -> None:
    now = time.time()
    server.write(
        [
            usage_line("site_a", free=10, t_s=now - 3 * 86400),  # within 8 days, not 15 min
            usage_line("site_a", free=40, t_s=now - 5),
            usage_line("site_b", free=7, t_s=now - 2 * 86400),  # only an old point
            *history_lines(now - 2 * 86400),
        ]
    )


def source(server: InfluxCompatServer, **settings) -> InfluxSource:
    """The source as a config file makes it: through the metrics section, whose defaults (the
    carbon intensities' lookback) apply."""
    influx = InfluxSettings(url=server.url, database=server.database, timeout_s=2.0, **settings)
    return InfluxSource.of(MetricsSettings(influxdb=influx))


@pytest.mark.parametrize("version", ["2", "3"])
def test_token_is_sent_as_the_token_scheme_with_the_documented_parameters(version):
    with InfluxCompatServer(version, TOKEN, files_per_day=DAILY) as server:
        fill(server)
        view = source(server, token=TOKEN, **V3).fetch()
        assert view.cluster["site_a"].cpus_free == 40
        assert view.runtimes[("dest_a", TOOL)].median_run == 900
        (request,) = server.requests
        assert request["path"] == "/query"
        assert request["headers"]["Authorization"] == f"Token {TOKEN}"
        assert set(request["params"]) == {"db", "q", "epoch"}  # no u/p beside the token
        assert request["params"]["db"] == "galaxy"
        assert request["params"]["epoch"] == "ns"


def test_per_measurement_lookback_reaches_the_query():
    with InfluxCompatServer("3", TOKEN, files_per_day=DAILY) as server:
        fill(server)
        view = source(server, token=TOKEN, **V3).fetch()
        q = server.requests[0]["params"]["q"]
        assert f'FROM "{CLUSTER}" WHERE "site" != \'\' AND time > now() - 900s' in q
        assert f'FROM "{QUEUE}" WHERE time > now() - 900s' in q
        assert f'FROM "{RUNTIME}" WHERE time > now() - 691200s' in q  # lookback_s: 8 days
        # carbon: no further back than metrics.carbon_staleness_s, unless lookbacks_s says
        assert f'FROM "{CARBON}" WHERE "site" != \'\' AND time > now() - 7200s' in q
        assert "site_b" not in view.cluster  # its only point is older than 15 minutes
        assert view.outcomes[("dest_b", TOOL)].ok == 39  # two days old: within 8 days


def test_influxdb3_refuses_eight_days_of_live_metrics_and_the_error_says_so():
    with InfluxCompatServer("3", TOKEN, files_per_day=DAILY) as server:
        fill(server)
        with pytest.raises(SourceError, match="HTTP 400.*file limit") as err:
            source(server, token=TOKEN).fetch()  # 8 days for every measurement
        assert TOKEN not in str(err.value)


@pytest.mark.parametrize("version", ["2", "3"])
def test_a_wrong_token_is_a_clear_401_that_does_not_show_the_token(version):
    with InfluxCompatServer(version, TOKEN, files_per_day=DAILY) as server:
        with pytest.raises(SourceError, match="HTTP 401") as err:
            source(server, token="wrong-token-value", **V3).fetch()
        assert "wrong-token-value" not in str(err.value)


def test_influxdb2_v1_authorization_as_basic_auth():
    with InfluxCompatServer("2", TOKEN, v1_credentials=("tpv_broker", "s3cret")) as server:
        fill(server)
        view = source(server, username="tpv_broker", password="s3cret").fetch()
        assert view.cluster["site_a"].cpus_free == 40
        header = server.requests[0]["headers"]["Authorization"]
        assert header == "Basic " + base64.b64encode(b"tpv_broker:s3cret").decode()


def test_influxdb3_token_as_the_password_of_basic_auth():
    with InfluxCompatServer("3", TOKEN, files_per_day=DAILY) as server:
        fill(server)
        view = source(server, username="any", password=TOKEN, **V3).fetch()
        assert view.cluster["site_a"].cpus_free == 40


def test_a_token_and_a_password_together_are_refused(tmp_path):
    path = tmp_path / "broker.yml"
    path.write_text("metrics: {influxdb: {token: abc, username: u, password: p}}\n")
    with pytest.raises(ConfigError, match="either token or username/password"):
        load_settings(path, environ={})


def test_a_lookback_for_an_unknown_measurement_is_refused_by_name(tmp_path):
    path = tmp_path / "broker.yml"
    path.write_text("metrics: {influxdb: {lookbacks_s: {htcondor_usage: 900}}}\n")
    with pytest.raises(ConfigError, match="metrics.influxdb.lookbacks_s.*htcondor_usage"):
        load_settings(path, environ={})
