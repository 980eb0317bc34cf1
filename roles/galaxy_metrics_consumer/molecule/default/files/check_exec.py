"""Run every Telegraf exec command the role configured the way Telegraf would (as its user,
with the plugin's environment and timeout) and check stdout is valid line protocol.

Telegraf itself cannot be installed on the CI machines, and neither can gxadmin: gxadmin's
entries are checked for syntax only (valid TOML, the expected command, interval and timeout).
Prints a JSON summary for verify.yml to assert on.
"""

import json
import pathlib
import re
import shlex
import subprocess
import sys
import tomllib

from metric_contract.lineprotocol import parse_line

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    if not match:
        raise SystemExit(f"invalid Telegraf duration {duration!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def main(conf_dir: str, user: str, gxadmin: str) -> None:
    summary: dict = {"files": [], "ran": {}, "syntax_only": []}
    for path in sorted(pathlib.Path(conf_dir).glob("tpv-*.conf")):
        conf = tomllib.loads(path.read_text())  # Telegraf's config is TOML
        summary["files"].append(path.name)
        for plugin in conf.get("inputs", {}).get("exec", []):
            assert plugin["data_format"] == "influx", path
            seconds(plugin["interval"])
            timeout = seconds(plugin["timeout"])
            for command in plugin["commands"]:
                argv = shlex.split(command)
                if argv[0] == gxadmin:
                    summary["syntax_only"].append(
                        {
                            "command": command,
                            "interval": plugin["interval"],
                            "timeout": plugin["timeout"],
                            "environment": plugin.get("environment", []),
                        }
                    )
                    continue
                proc = subprocess.run(
                    ["runuser", "-u", user, "--", "env", *plugin.get("environment", []), *argv],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    cwd="/",
                )
                if proc.returncode != 0:
                    raise SystemExit(f"{command}: exit {proc.returncode}: {proc.stderr.strip()}")
                points = [parse_line(line) for line in proc.stdout.splitlines() if line.strip()]
                summary["ran"][argv[2] if argv[1] == "-m" else command] = [
                    {"measurement": p.measurement, "tags": p.tags, "fields": p.fields}
                    for p in points
                ]
    print(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:4])
