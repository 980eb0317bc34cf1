"""ARBO: how many parallel workers a workflow task should get, learned from its run history.

Modules: ``amdahl`` (Amdahl's law fitted to a task's runs), ``estimator`` (that fit + a residual
GP: the run-time distribution at each ``s``), ``objective`` (choosing s for an objective and
SLO), ``store`` (SQLAlchemy run store), ``service`` (the three operations), ``routes`` (FastAPI
router), ``models`` (request/response bodies), ``client`` (the standard-library client for
workflow engines). Nothing is imported here, so a process that only needs the store or the
client does not pay for scikit-learn.
"""
