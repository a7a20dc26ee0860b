"""Numeric snapshots: baselines on disk (store), their comparison (compare), running a model to record or
check them (run), and the CI outputs of a check (ci: JUnit and markdown; html: the drift report).

The CLI's ``snapshot`` commands and the pytest plugin both use this package; nothing here prints.
"""
