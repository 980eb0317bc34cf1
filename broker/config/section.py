"""The base of every settings section: a key the model does not know is an error.

A typo in a config file (``metrics: {staleness: 60}``) must fail loudly instead of leaving the
default in force; every section model and :class:`~broker.config.Settings` inherit this.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
