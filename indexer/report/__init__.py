"""Risk report: one self-contained HTML page of charts for a stored risk run.

`write_report` reads a run (the latest stored for the chain, or a given id) and the history of all the
chain's runs from the `risk_*` tables, and writes `OUT_DIR/index.html`: inline CSS and inline SVG drawn
here, no script, no network, nothing else to ship. Every text taken from the database is escaped.
What each chart shows: docs/report.md.

The parts: `data` (the SQL reads), `analysis` (the computations), `svg` (the charts), `format` (numbers and
text), `page` (the sections and the file).
"""

from indexer.report.data import ReportData, ReportError, load_report_data
from indexer.report.format import usd
from indexer.report.page import SECTIONS, STATUS_COLOURS, render_report, write_report

__all__ = ["SECTIONS", "STATUS_COLOURS", "ReportData", "ReportError", "load_report_data", "render_report", "usd",
           "write_report"]
