"""Render the role tpv_broker_rank's template without Ansible, exactly as its template task would.

Ansible's `template` module is Jinja2 with `trim_blocks=True`; the template uses only Jinja2's
built-in filters and an `include` of the rank code (tpv_broker_rank.py, next to it, which both
Ansible and the loader below find in the role's templates/), so this gives the same bytes (bar
the `ansible_managed` header line). The TPV
tests render through this module with the role's defaults, so the snippet they prove is the one
the role ships, and examples/tpv/tpv_broker_rank.yml is this script's output for vars.yml:

    python examples/tpv/render.py --vars examples/tpv/vars.yml -o examples/tpv/tpv_broker_rank.yml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import jinja2
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "tpv_broker_rank"
TEMPLATE = "tpv_broker_rank.yml.j2"


def role_defaults() -> dict[str, Any]:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def role_choices() -> dict[str, list[Any]]:
    """The allowed values of the variables whose argument spec lists `choices`."""
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    return {name: spec["choices"] for name, spec in options.items() if "choices" in spec}


def render(overrides: dict[str, Any] | None = None) -> str:
    """The fragment for the role's defaults updated with `overrides` (unknown names and values
    outside a variable's `choices` refused, as Ansible's argument_specs check refuses them)."""
    variables = role_defaults()
    unknown = sorted(set(overrides or {}) - set(variables))
    if unknown:
        raise KeyError(f"not variables of the role tpv_broker_rank: {', '.join(unknown)}")
    variables.update(overrides or {})
    for name, choices in role_choices().items():
        if variables[name] not in choices:
            raise ValueError(
                f"{name} must be one of {', '.join(map(str, choices))}, not {variables[name]!r}"
                " (quote off in YAML: a bare off is false)"
            )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    return env.get_template(TEMPLATE).render(**variables)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vars", type=Path, help="YAML file of tpv_broker_rank_* overrides")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    overrides = yaml.safe_load(args.vars.read_text()) if args.vars else {}
    text = render(overrides or {})
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
