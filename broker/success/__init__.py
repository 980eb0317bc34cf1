"""Success model: P(tool succeeds | destination) from outcomes and destination features.

`model.SuccessModel` is the per-tool hierarchical Bayesian logistic model the ranking uses
(through `broker.ranking.history.History`); `eval` cross-validates it against the published
reference on per-package CSVs (`tpv-broker eval-success`). See docs/success-model.md.
"""
