"""Collector settings: file, then environment, then flags; errors name the source."""

from __future__ import annotations

import pytest

from collectors.errors import CollectorError
from collectors.job_outcomes import format_lines
from collectors.settings import CollectorSettings, load_settings, redact


def test_defaults_follow_the_contract():
    s = load_settings(environ={})
    assert s.exchange == "tpv_broker.metrics"
    assert s.binding_key == "htcondor.*"
    assert s.max_seconds < 5  # below Telegraf's default exec timeout


def test_file_then_env_then_overrides(tmp_path):
    cfg = tmp_path / "collector.toml"
    cfg.write_text('site = "from-file"\nexchange = "file.x"\nmax_seconds = 2.5\nqueue = "q.file"\n')
    env = {"TPV_COLLECTOR_EXCHANGE": "env.x", "TPV_COLLECTOR_QUEUE": "q.env"}
    s = load_settings(cfg, environ=env, overrides={"queue": "q.flag", "site": None})
    assert (s.site, s.exchange, s.queue, s.max_seconds) == ("from-file", "env.x", "q.flag", 2.5)


def test_config_file_from_environment(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('amqp_url = "amqps://u:p@mq.example.org:5671/galaxy"\n')
    s = load_settings(environ={"TPV_COLLECTOR_CONFIG": str(cfg)})
    assert s.amqp_url.startswith("amqps://")
    assert s.redacted_url() == "amqps://u:***@mq.example.org:5671/galaxy"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ('sitee = "x"\n', {}, "unknown key 'sitee'"),
        ("site = \n", {}, "not valid TOML"),
        ("max_messages = 0\n", {}, "max_messages must be a positive number"),
        ("", {"TPV_COLLECTOR_MAX_SECONDS": "soon"}, "TPV_COLLECTOR_MAX_SECONDS"),
        ("site = 5\n", {}, "site must be a string"),
    ],
)
def test_bad_settings_name_the_problem(tmp_path, text, env, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(CollectorError) as info:
        load_settings(cfg, environ=env)
    assert message in str(info.value) and info.value.exit_code == 2


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(CollectorError, match="cannot read config file"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_redact_leaves_urls_without_password_alone():
    assert redact("amqp://127.0.0.1/") == "amqp://127.0.0.1/"
    assert "secret" not in CollectorSettings(amqp_url="amqp://u:secret@h/").redacted_url()


def test_job_outcomes_lines_escape_tags_and_use_integer_fields():
    lines = format_lines([("toolshed.g2/repos/x y,z/1.0", "pulsar=eu", 7, 2)], window_days=30)
    assert lines == [
        r"job_outcomes,destination_id=pulsar\=eu,tool_id=toolshed.g2/repos/x\ y\,z/1.0 "
        "ok=7i,error=2i,window_days=30i"
    ]
