"""The evaluation report: matplotlib figures (PNG) and HTML / Markdown / JSON rendering."""

from lusynth.report.render import ReportArtifacts, headline_metrics, write_report

__all__ = ["ReportArtifacts", "headline_metrics", "write_report"]
