"""Reports of a run's searches: one self-contained HTML page, PNG figures, JSON and CSV."""

from slimda_nas.report.build import build_report

__all__ = ["build_report"]
