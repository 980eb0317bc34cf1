"""YAML file + ``TPV_BROKER_*`` environment -> a validated :class:`~broker.config.Settings`.

Apart from the models because this is the part that reads files and the environment (the only
place in the broker that does): the models stay plain data that tests and the simulator build
directly. A problem is raised as :class:`ConfigError` naming the file, or the environment
variable, and the key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from broker.config.settings import Settings

ENV_PREFIX = "TPV_BROKER_"
CONFIG_ENV = "TPV_BROKER_CONFIG"
DATA_DIR = Path(__file__).parent.parent / "data"
DEFAULT_CONFIG = DATA_DIR / "demo-network.yml"

# The package's name, as before the split: operators' logging filters name `broker.config`.
log = logging.getLogger("broker.config")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


def _setting_exists(path: list[str], annotation: Any = None) -> bool:
    """Whether `path` (lower-case keys) names a setting: a field of a section, or any key of a
    mapping setting (destinations, lookbacks_s, auth.tokens as a mapping, ...)."""
    annotation = Settings if annotation is None else annotation
    if not path:
        return True
    if get_origin(annotation) in (Union, UnionType):  # e.g. a list or a mapping of tokens
        return any(_setting_exists(path, a) for a in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(path[0])
        if field is None or field.exclude:
            return False
        return _setting_exists(path[1:], field.annotation)
    if get_origin(annotation) is dict:
        return _setting_exists(path[1:], get_args(annotation)[1])
    return False  # below a plain value: no keys there


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The overrides as a tree, and which environment variable set each path. A variable that
    names no setting (e.g. TPV_BROKER_TOKEN, meant for the TPV side) is ignored with a warning:
    it belongs to something else on the host, and the config file is not at fault."""
    tree: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == CONFIG_ENV:
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if not path or not _setting_exists(path):
            log.warning(
                "ignoring environment variable %s: it names no broker setting "
                "(TPV_BROKER_<SECTION>__<KEY>, see examples/broker.yml)",
                key,
            )
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {key} conflicts with another override")
        if isinstance(node.get(path[-1]), dict):
            raise ConfigError(f"environment variable {key} conflicts with another override")
        node[path[-1]] = value
        origin[tuple(path)] = key
    return tree, origin


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, mapping by mapping (a new dict; the inputs are unchanged)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve(path: Path | None, base: Path) -> Path | None:
    if path is None or path.is_absolute():
        return path
    return (base / path).resolve()


def read_yaml_mapping(path: Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """A YAML file holding a mapping (empty: {}); `error` names the file and what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise error(f"{what} {path} must hold a mapping at the top level")
    return raw


def _env_key(loc: tuple[Any, ...], origin: Mapping[tuple[str, ...], str]) -> str | None:
    """The environment variable that set the value at `loc` (or a value above it), if any."""
    path = tuple(str(p) for p in loc)
    for i in range(len(path), 0, -1):
        if path[:i] in origin:
            return origin[path[:i]]
    return None


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the YAML file, apply env overrides, validate; raise ConfigError naming the problem."""
    environ = os.environ if environ is None else environ
    chosen = Path(path or environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    raw = read_yaml_mapping(chosen, "config file", ConfigError)
    overrides, origin = _env_overrides(environ)
    try:
        settings = Settings.model_validate(deep_merge(raw, overrides))
    except ValidationError as exc:
        from_env = [e for e in exc.errors() if _env_key(e["loc"], origin)]
        if from_env:  # the file may be fine: name the variable that is not
            problems = "; ".join(
                f"environment variable {_env_key(e['loc'], origin)} "
                f"({'.'.join(str(p) for p in e['loc'])}): {e['msg']}"
                for e in from_env
            )
            raise ConfigError(f"invalid setting from the environment: {problems}") from exc
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid config {chosen}: {problems}") from exc
    base = chosen.resolve().parent
    settings.source_file = chosen.resolve()
    settings.metrics.snapshot = _resolve(settings.metrics.snapshot, base)
    settings.state_dir = _resolve(settings.state_dir, base) or settings.state_dir
    if settings.metrics.source == "snapshot" and settings.metrics.snapshot is None:
        raise ConfigError(
            f"invalid config {chosen}: metrics.snapshot is required for source snapshot"
        )
    return settings
