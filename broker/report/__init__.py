"""`tpv-broker report`: how good the broker's predictions were on real traffic, read from the
decision log (`routing_decision`) and the per-attempt outcomes (`job_attempt_outcome`).

read.py reads and joins them, figures.py computes the figures, text.py prints them, plots.py
draws them; cli.py is the subcommand. docs/report.md defines every figure.
"""
