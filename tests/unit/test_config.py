from pathlib import Path

import pytest

from broker.config import DEFAULT_CONFIG, ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broker.yml"
    path.write_text(text)
    return path


def test_embedded_default_loads_and_points_at_its_snapshot():
    settings = load_settings(environ={})
    assert settings.source_file == DEFAULT_CONFIG.resolve()
    assert settings.metrics.source == "snapshot"
    assert settings.metrics.snapshot.is_file()
    assert len(settings.destinations) >= 12
    assert settings.site_of("pulsar_de_freiburg") == "freiburg"
    assert settings.site_of("not_configured") == "not_configured"


def test_relative_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "conf").mkdir()
    path = write(tmp_path / "conf", "metrics: {snapshot: ../data/net.lp}\nstate_dir: state\n")
    settings = load_settings(path, environ={})
    assert settings.metrics.snapshot == (tmp_path / "data" / "net.lp").resolve()
    assert settings.state_dir == (tmp_path / "conf" / "state").resolve()


def test_env_overrides_nested_keys_and_config_path(tmp_path):
    path = write(tmp_path, "metrics: {source: snapshot, snapshot: x.lp}\n")
    env = {
        "TPV_BROKER_CONFIG": str(path),
        "TPV_BROKER_METRICS__SOURCE": "influxdb",
        "TPV_BROKER_METRICS__INFLUXDB__URL": "http://127.0.0.1:9999",
        "TPV_BROKER_METRICS__INFLUXDB__TIMEOUT_S": "0.5",
        "TPV_BROKER_AUTH__TOKENS": "one, two",
        "UNRELATED": "x",
    }
    settings = load_settings(environ=env)
    assert settings.metrics.source == "influxdb"
    assert settings.metrics.influxdb.url == "http://127.0.0.1:9999"
    assert settings.metrics.influxdb.timeout_s == 0.5
    assert settings.auth.tokens == ["one", "two"]


@pytest.mark.parametrize(
    "text, named",
    [
        ("metrics: {source: prometheus}", "metrics.source"),
        ("metrics: {staleness_s: -5, snapshot: x}", "metrics.staleness_s"),
        ("destinations: {d1: {latitude: 123}}", "destinations.d1.latitude"),
        ("metrics: {snapshot: x, typo_key: 1}", "metrics.typo_key"),
        ("metrics: {source: snapshot, snapshot: null}", "metrics.snapshot"),
    ],
)
def test_invalid_config_names_the_key(tmp_path, text, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(write(tmp_path, text), environ={})


def test_unreadable_and_non_mapping_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.yml", environ={})
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, "- a\n- b\n"), environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "a: [b\n"), environ={})


def test_secrets_do_not_show_in_repr(tmp_path):
    path = write(
        tmp_path,
        "metrics: {snapshot: x, influxdb: {password: hunter2}}\nauth: {tokens: [s3cret]}\n",
    )
    text = repr(load_settings(path, environ={}))
    assert "hunter2" not in text and "s3cret" not in text


def test_example_production_config_is_valid():
    path = Path(__file__).resolve().parents[2] / "examples" / "broker.yml"
    settings = load_settings(path, environ={})
    assert settings.metrics.source == "influxdb"
    assert settings.ranking.bandwidth.matrix["os_freiburg"]["pulsar_be_ghent"] == 220


def test_a_stray_tpv_broker_variable_is_named_and_ignored(tmp_path, caplog):
    # the name examples/tpv/vars.yml suggests for the job handlers' copy of the token
    path = write(tmp_path, "metrics: {snapshot: x.lp}\n")
    env = {"TPV_BROKER_TOKEN": "abc", "TPV_BROKER_METRICS__TYPO": "1", "TPV_BROKER_PORT": "1"}
    with caplog.at_level("WARNING", logger="broker.config"):
        settings = load_settings(path, environ=env)
    assert settings.metrics.snapshot == (tmp_path / "x.lp").resolve()
    warned = " ".join(r.getMessage() for r in caplog.records)
    for name in env:
        assert f"ignoring environment variable {name}" in warned
    assert "abc" not in warned  # a token's value is never logged


def test_a_bad_value_from_the_environment_names_the_variable_not_the_file(tmp_path):
    path = write(tmp_path, "metrics: {snapshot: x.lp}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={"TPV_BROKER_SERVER__PORT": "eighty"})
    assert "environment variable TPV_BROKER_SERVER__PORT" in str(err.value)
    assert str(path) not in str(err.value)


def test_settings_under_mappings_and_sections_are_accepted_from_the_environment(tmp_path):
    path = write(tmp_path, "metrics: {snapshot: x.lp}\ndestinations: {d1: {site: s1}}\n")
    env = {
        "TPV_BROKER_DESTINATIONS__D1__SITE": "s2",
        "TPV_BROKER_LEDGER__REDIS_URL": "redis://127.0.0.1:6379/0",
        "TPV_BROKER_METRICS__INFLUXDB__LOOKBACKS_S__HTCONDOR_CLUSTER_USAGE": "900",
    }
    settings = load_settings(path, environ=env)
    assert settings.site_of("d1") == "s2"
    assert settings.ledger.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.metrics.influxdb.lookbacks_s == {"htcondor_cluster_usage": 900}
    # what the source is given: carbon intensities only as far back as they can be used
    assert settings.metrics.lookbacks_s() == {
        "htcondor_cluster_usage": 900,
        "pulsar_carbon_intensity": 7200,
    }


def test_a_carbon_lookback_of_the_administrators_own_is_kept(tmp_path):
    path = write(
        tmp_path,
        "metrics: {carbon_staleness_s: 600,\n"
        "  influxdb: {lookbacks_s: {pulsar_carbon_intensity: 3600}}}\n",
    )
    assert load_settings(path, environ={}).metrics.lookbacks_s() == {
        "pulsar_carbon_intensity": 3600
    }
    other = write(tmp_path, "metrics: {carbon_staleness_s: 600}\n")
    assert load_settings(other, environ={}).metrics.lookbacks_s() == {
        "pulsar_carbon_intensity": 600
    }
    assert load_settings(other, environ={}).metrics.influxdb.lookbacks_s == {}


def test_an_infinite_or_nan_figure_is_refused_by_name(tmp_path):
    for text, key in [
        ("ranking: {carbon_s_per_kg: .inf}", "ranking.carbon_s_per_kg"),
        ("metrics: {carbon_staleness_s: .inf}", "metrics.carbon_staleness_s"),
        ("ranking: {watts_per_core: .nan}", "ranking.watts_per_core"),
        ("metrics: {staleness_s: .inf}", "metrics.staleness_s"),
        ("metrics: {influxdb: {lookback_s: .inf}}", "metrics.influxdb.lookback_s"),
        ("metrics: {influxdb: {lookbacks_s: {job_outcomes: .inf}}}", "lookbacks_s"),
    ]:
        with pytest.raises(ConfigError, match=key):
            load_settings(write(tmp_path, text + "\n"), environ={})


@pytest.mark.parametrize(
    "text, source",
    [
        ("metrics: {influxdb: {url: 'http://influx:8086'}}", "influxdb"),  # production
        ("{}", "influxdb"),  # as examples/broker.yml says
        ("metrics: {snapshot: net.lp}", "snapshot"),  # a file named: it is the source
        ("metrics: {source: influxdb, snapshot: net.lp}", "influxdb"),  # said outright
    ],
)
def test_metrics_source_is_influxdb_unless_a_snapshot_is_named(tmp_path, text, source):
    assert load_settings(write(tmp_path, text), environ={}).metrics.source == source


def test_examples_broker_yml_shows_the_default_source():
    import yaml

    from broker.config import Settings
    from tests.support.paths import ROOT

    example = yaml.safe_load((ROOT / "examples" / "broker.yml").read_text())
    assert example["metrics"]["source"] == Settings().metrics.source


@pytest.mark.parametrize("prefix, expected", [("/tpv-broker/", "/tpv-broker"), ("", "")])
def test_root_path_is_normalised(tmp_path, prefix, expected):
    path = write(tmp_path, f"metrics: {{snapshot: x}}\nserver: {{root_path: '{prefix}'}}\n")
    assert load_settings(path, environ={}).server.root_path == expected


def test_root_path_without_a_leading_slash_is_refused(tmp_path):
    path = write(tmp_path, "metrics: {snapshot: x}\nserver: {root_path: tpv}\n")
    with pytest.raises(ConfigError, match=r"server\.root_path: .*must start with /"):
        load_settings(path, environ={})
