"""Reproducible performance and decision-quality runs (`make bench`)."""
