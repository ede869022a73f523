"""Emails in, tidy rows out: parsing, corpora, splits and the DuckDB store."""
