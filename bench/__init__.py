"""pfl-bench: a fair benchmark of Pareto Front Learning and multi-task learning methods."""

__version__ = "0.1.0"
