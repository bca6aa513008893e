"""Writers render :class:`deepscan.results.ScanResult` objects for people and programs.

Streaming writers (:class:`JsonLinesWriter`, :class:`CsvWriter`) write each result as soon as it
is known, so an interrupted batch keeps every finished result; the others (table, JSON array,
JUnit XML, HTML) render the whole list at the end.
"""

from deepscan.writers.csvout import CSV_COLUMNS, CsvWriter
from deepscan.writers.jsonout import JsonLinesWriter, read_jsonl, write_json
from deepscan.writers.junit import write_junit
from deepscan.writers.table import render_table

__all__ = [
    "CSV_COLUMNS", "CsvWriter", "JsonLinesWriter", "read_jsonl", "write_json", "write_junit",
    "render_table",
]
