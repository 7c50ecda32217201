"""Self-contained HTML reports with plots: `write_report(results, "report.html")`."""

from secateurs.report.results import SCHEMA, load_results, summarize, validate
from secateurs.report.write import ReportFiles, dump_json, to_csv, write_report

__all__ = [
    "SCHEMA",
    "ReportFiles",
    "dump_json",
    "load_results",
    "summarize",
    "to_csv",
    "validate",
    "write_report",
]
