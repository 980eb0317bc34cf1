"""The one rule for what a site name may hold.

A site (an HTCondor pool behind a Pulsar endpoint) travels as the producer's `site` field, the
AMQP routing key `htcondor.<site>`, the `site` tag of `htcondor_cluster_usage`, and a key in the
broker's configuration. The consumer refuses a message whose site breaks this rule (it is
dead-lettered) and the line-protocol parser refuses such a tag, so what the consumer writes the
broker can always read back, from InfluxDB or from a snapshot file.

The rule: 1 to `MAX_SITE_LEN` characters, all printable (`str.isprintable`: no control or
format characters, no line or paragraph separators such as U+0085, U+2028, U+2029, no
separator but the ASCII space, nothing unassigned or private-use), no backslash (line protocol
cannot escape one, and before an escaped comma, space or equals sign it breaks the line), and no
space at either end (a name that differs from another only by an invisible space is a typo).
"""

from __future__ import annotations

import unicodedata
from typing import Any

MAX_SITE_LEN = 128


class SiteNameError(ValueError):
    """A site name that breaks the rule; the message says which part."""


def site_problem(site: Any) -> str | None:
    """Why `site` is not a valid site name, or None when it is."""
    if not isinstance(site, str):
        return f"site must be a non-empty string, got {type(site).__name__}"
    if not site.strip():
        return "site must be a non-empty string"
    if len(site) > MAX_SITE_LEN:
        return f"site is longer than {MAX_SITE_LEN} characters"
    if "\\" in site:
        return "site contains a backslash"
    bad = next((ch for ch in site if not ch.isprintable()), None)
    if bad is not None:
        return f"site contains {_describe(bad)}"
    if site != site.strip(" "):
        return "site starts or ends with a space"
    return None


def validate_site(site: Any) -> str:
    """`site` itself when it is a valid site name; SiteNameError naming the problem if not."""
    problem = site_problem(site)
    if problem is not None:
        raise SiteNameError(problem)
    return site


_KINDS = {
    "Cc": "a control character",
    "Cf": "a format character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Zs": "a space other than ASCII space",
}


def _describe(ch: str) -> str:
    kind = _KINDS.get(unicodedata.category(ch), "an unprintable character")
    return f"{kind} (U+{ord(ch):04X})"
