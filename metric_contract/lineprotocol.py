"""InfluxDB line protocol: format (the collectors, the simulator, the demo snapshot) and parse
(the broker's snapshot source, the tests).

Part of the metric contract so that writer and reader share one codec, and dependency-free so a
Pulsar node can install it without the broker's stack. Escaping follows the InfluxDB 1.x
reference: in measurements, commas and spaces; in tag keys, tag values and field keys, commas,
equals signs and spaces; in string field values, double quotes and backslashes.

What line protocol cannot carry is refused, never written: a line break in any name, tag value
or string field value (a newline splits the point in two; the other line breaks split it for
every reader that uses `str.splitlines`), and, in names and tag values, a backslash at the end
or before a character that gets escaped (line protocol has no escape for a backslash, so it
would escape the separator). The parser applies the site rule (`metric_contract.sites`) to the
`site` tag of `htcondor_cluster_usage`, the same rule the AMQP consumer applies before writing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from metric_contract.measurements import CLUSTER, SITE
from metric_contract.sites import site_problem

FieldValue = float | int | bool | str


class LineProtocolError(ValueError):
    """A line that is not valid line protocol; the message names the line and the problem."""


@dataclass(frozen=True)
class Point:
    measurement: str
    tags: dict[str, str] = field(default_factory=dict)
    fields: dict[str, FieldValue] = field(default_factory=dict)
    time_ns: int | None = None

    @property
    def time_s(self) -> float | None:
        return None if self.time_ns is None else self.time_ns / 1e9


# Every character `str.splitlines` breaks a line on.
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_LINE_BREAK = re.compile(f"[{LINE_BREAKS}]")
# A backslash line protocol would read as escaping what follows: the end, or an escaped char.
_BAD_BACKSLASH = re.compile(r"\\(?=[,= ]|\Z)")


def text_problem(text: str) -> str | None:
    """Why `text` cannot be a measurement, tag key, tag value or field key in line protocol,
    or None when it can (escaping takes care of commas, equals signs and spaces)."""
    brk = _LINE_BREAK.search(text)
    if brk is not None:
        return f"contains a line break (U+{ord(brk.group()):04X})"
    bad = _BAD_BACKSLASH.search(text)
    if bad is not None:
        if bad.end() == len(text):
            return "ends with a backslash"
        return f"has a backslash before {text[bad.end()]!r}"
    return None


def _checked(kind: str, text: str) -> str:
    problem = text_problem(text)
    if problem is not None:
        raise LineProtocolError(f"{kind} {text!r} {problem}: line protocol cannot carry it")
    return text


def _escape(text: str, specials: str) -> str:
    out = text.replace("\\", "\\\\") if "\\" in specials else text
    for ch in specials.replace("\\", ""):
        out = out.replace(ch, "\\" + ch)
    return out


def string_field(value: str) -> str:
    """A string field value, quoted and escaped; LineProtocolError when it holds a line break."""
    brk = _LINE_BREAK.search(value)
    if brk is not None:
        raise LineProtocolError(
            f"string field value {value!r} contains a line break (U+{ord(brk.group()):04X})"
        )
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _format_field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError(f"field value {value!r} is not finite")
        return repr(value)
    if isinstance(value, str):
        return string_field(value)
    raise LineProtocolError(f"unsupported field value type {type(value).__name__}")


def series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """The escaped `measurement,tag=value,...` that starts a point (tags sorted, empty ones
    dropped); LineProtocolError when line protocol cannot carry a part. A writer of many points
    of few series builds this once per series and appends the fields itself."""
    head = _escape(_checked("measurement", measurement), ", ")
    for key in sorted(tags):
        value = tags[key]
        if value is None or value == "":
            continue
        k = _checked("tag key", str(key))
        v = _checked(f"tag {k} value", str(value))
        head += f",{_escape(k, ',= ')}={_escape(v, ',= ')}"
    return head


def format_point(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    time_ns: int | None = None,
) -> str:
    """One line of line protocol; tags sorted (InfluxDB's preferred order), empty tags dropped.
    LineProtocolError names the part that line protocol cannot carry (see the module doc)."""
    if not fields:
        raise LineProtocolError(f"point {measurement!r} has no fields")
    head = series_key(measurement, tags)
    body = ",".join(
        f"{_escape(_checked('field key', k), ',= ')}={_format_field(v)}" for k, v in fields.items()
    )
    line = f"{head} {body}"
    return line if time_ns is None else f"{line} {int(time_ns)}"


def _split_unescaped(text: str, sep: str, quotes: bool = False) -> list[str]:
    """Split on `sep` outside backslash escapes (and, for field sets, outside quoted strings)."""
    parts, current, i, in_quote = [], [], 0, False
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if quotes and ch == '"':
            in_quote = not in_quote
        elif ch == sep and not in_quote:
            parts.append("".join(current))
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    if in_quote:
        raise LineProtocolError("unterminated string field value")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ',= "\\':
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _parse_value(raw: str) -> FieldValue:
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise LineProtocolError(f"bad string field value {raw!r}")
        return raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if raw in ("t", "T", "true", "True", "TRUE"):
        return True
    if raw in ("f", "F", "false", "False", "FALSE"):
        return False
    try:
        if raw.endswith(("i", "u")):
            return int(raw[:-1])
        return float(raw)
    except ValueError:
        raise LineProtocolError(f"bad field value {raw!r}") from None


def _key_end(text: str) -> int:
    """Index of the space that ends the measurement and tags: the first unescaped one. Double
    quotes mean nothing there (InfluxDB keeps them literally in names and tag values); only in
    the field set do they open a string."""
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == " ":
            return i
        else:
            i += 1
    return len(text)


def parse_line(line: str) -> Point:
    """Parse one non-empty, non-comment line."""
    text = line.strip()
    end = _key_end(text)
    sections = [text[:end], *_split_unescaped(text[end:], " ", quotes=True)]
    sections = [s for s in sections if s != ""]
    if len(sections) not in (2, 3):
        raise LineProtocolError("expected 'measurement[,tags] fields [timestamp]'")
    key, field_set = sections[0], sections[1]
    key_parts = _split_unescaped(key, ",")
    measurement = _unescape(key_parts[0])
    if not measurement:
        raise LineProtocolError("empty measurement name")
    tags: dict[str, str] = {}
    for item in key_parts[1:]:
        kv = _split_unescaped(item, "=")
        if len(kv) != 2 or not kv[0] or not kv[1]:
            raise LineProtocolError(f"bad tag {item!r}")
        tags[_unescape(kv[0])] = _unescape(kv[1])
    fields: dict[str, FieldValue] = {}
    for item in _split_unescaped(field_set, ",", quotes=True):
        kv = _split_unescaped(item, "=", quotes=True)
        if len(kv) != 2 or not kv[0]:
            raise LineProtocolError(f"bad field {item!r}")
        fields[_unescape(kv[0])] = _parse_value(kv[1])
    if measurement == CLUSTER and SITE in tags:
        problem = site_problem(tags[SITE])
        if problem is not None:
            raise LineProtocolError(f"{CLUSTER} point with {SITE} tag {tags[SITE]!r}: {problem}")
    time_ns = None
    if len(sections) == 3:
        try:
            time_ns = int(sections[2])
        except ValueError:
            raise LineProtocolError(f"bad timestamp {sections[2]!r}") from None
    return Point(measurement, tags, fields, time_ns)


def parse_text(text: str) -> Iterator[Point]:
    """Parse a whole text (a snapshot file, a collector's output). Splits on newline only, as
    InfluxDB does, so a character other readers take for a line break (U+2028 in a site name)
    is reported as what it is instead of as two broken halves of a line."""
    return parse_lines(text.split("\n"))


def parse_lines(lines: Iterable[str]) -> Iterator[Point]:
    """Parse lines of line protocol; errors name the 1-based line number."""
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            yield parse_line(stripped)
        except LineProtocolError as exc:
            raise LineProtocolError(f"line {number}: {exc}") from None
