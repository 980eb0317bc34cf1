"""Stand-in for the Telegraf daemon (test only: Telegraf is not installable on the CI machines).

Does what the real agent does with its configuration directory and nothing else: it reads every
`*.conf` of the directory as TOML when it starts and again on SIGHUP (the real unit's
`ExecReload` sends SIGHUP), and records what it loaded, so verify can tell whether a running
Telegraf was made to load the role's inputs.
"""

import json
import pathlib
import signal
import sys
import time
import tomllib

CONF_DIR = pathlib.Path(sys.argv[1])
STATE = pathlib.Path(sys.argv[2])
loads = 0


def load(*_: object) -> None:
    global loads
    loads += 1
    commands = []
    for path in sorted(CONF_DIR.glob("*.conf")):
        conf = tomllib.loads(path.read_text())  # an invalid file fails here, as Telegraf would
        commands += [c for t in conf.get("inputs", {}).get("exec", []) for c in t["commands"]]
    STATE.write_text(json.dumps({"loads": loads, "commands": commands}))


signal.signal(signal.SIGHUP, load)
load()
while True:
    time.sleep(3600)
