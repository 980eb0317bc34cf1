"""Task reprioritization: a Gaussian-process surrogate reorders a workflow's pending tasks.

``service.reprioritize`` holds the logic, ``models`` the request/response contract and
``routes.router`` the ``POST /reprioritize`` endpoint the app includes.
"""

from broker.reprioritize.models import ReprioritizeRequest, ReprioritizeResponse
from broker.reprioritize.service import reprioritize

__all__ = ["ReprioritizeRequest", "ReprioritizeResponse", "reprioritize"]
