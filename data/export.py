"""Tables written for people to open in a spreadsheet.

A cell that begins with =, +, -, @, a tab or a carriage return is a formula to Excel,
LibreOffice and Google Sheets (CSV injection): an email subject like `=HYPERLINK(...)`
would run when an analyst opens the export. Such text cells get a leading apostrophe, the
spreadsheet convention for "this is text"; numbers stay numbers.
"""

from __future__ import annotations

import re

import pandas as pd

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value):
    """A text value that a spreadsheet would read as a formula, made literal; anything else as is."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def spreadsheet_safe_csv(frame: pd.DataFrame) -> str:
    """`frame` as CSV text with every text cell (and column name) neutralised."""
    safe = frame.copy()
    safe.columns = [neutralise_cell(str(c)) for c in safe.columns]
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]) and not pd.api.types.is_bool_dtype(safe[column]):
            safe[column] = safe[column].map(_neutralise_nested)
    return safe.to_csv(index=False)


def _neutralise_nested(value):
    if isinstance(value, (list, tuple)):  # e.g. an email's URLs: written as one cell
        return neutralise_cell("; ".join(str(v) for v in value))
    return neutralise_cell(value)


def download_name(*parts: str, suffix: str = ".csv") -> str:
    """A file name from names that may hold anything (corpus and training-set names)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(parts)).strip("-.") or "phishlens"
    return stem[:120] + suffix
