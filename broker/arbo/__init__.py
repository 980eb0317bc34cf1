"""ARBO: how many parallel workers a workflow task should get, learned from its run history.

Modules: ``estimator`` (Amdahl fit + residual GP), ``objective`` (choosing s for an objective and
SLO), ``store`` (SQLAlchemy run store), ``service`` (the three operations), ``routes`` (FastAPI
router), ``models`` (request/response bodies). Nothing is imported here, so a process that only
needs the store does not pay for scikit-learn.
"""
