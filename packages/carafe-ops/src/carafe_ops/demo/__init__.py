"""The carafe-ops demo: the op checked against the reference, benchmarked, and trained on a toy task.
Run it with ``python -m carafe_ops.demo``."""
