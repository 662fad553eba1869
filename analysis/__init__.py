"""Analysis of search runs: trials tables, hyperparameter range tables, importance, plots, report.

>>> from analysis import read_trials, range_table, write_report
>>> write_report(["runs/mlp"], "reports/mlp")
"""
from analysis.history import optimization_history
from analysis.ranges import importance, range_table, top_trials
from analysis.report import ReportError, ReportResult, write_report
from tuner.results import read_search_space, read_trials

__all__ = ["ReportError", "ReportResult", "importance", "optimization_history", "range_table",
           "read_search_space", "read_trials", "top_trials", "write_report"]
