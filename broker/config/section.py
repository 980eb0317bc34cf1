"""The base of every settings section: a key the model does not know is an error, and so is
an infinite or NaN number.

A typo in a config file (``metrics: {staleness: 60}``) must fail loudly instead of leaving the
default in force; every section model and :class:`~broker.config.Settings` inherit this. YAML
reads ``.inf`` and ``.nan`` as floats, and no setting means anything by them: an infinite
lookback would break every InfluxDB query, an infinite price turn an expected time into NaN.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
