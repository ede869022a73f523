"""Evaluation matrix, attribution, head analysis and the jobs that write them to the store."""
