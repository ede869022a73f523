"""The matrix metrics: Python (data.metrics) and SQL (data.store.METRICS_SQL) agree on every
confusion table, including the one-class and empty-verdict corners."""

import itertools
import math

import duckdb
import pytest

from data import metrics


def _sql_values(tp: int, fp: int, fn: int, tn: int) -> tuple:
    query = (f"SELECT {metrics.F1_SQL}, {metrics.RECALL_SQL}, {metrics.PRECISION_SQL} "
             "FROM (SELECT ?::BIGINT AS tp, ?::BIGINT AS fp, ?::BIGINT AS fn, ?::BIGINT AS tn)")
    return duckdb.execute(query, [tp, fp, fn, tn]).fetchone()


@pytest.mark.parametrize("tp,fp,fn,tn", list(itertools.product([0, 1, 3], repeat=4)))
def test_python_and_sql_metrics_are_one_definition(tp, fp, fn, tn):
    sql_f1, sql_recall, sql_precision = _sql_values(tp, fp, fn, tn)
    for python, sql in [(metrics.f1(tp, fp, fn, tn), sql_f1), (metrics.recall(tp, fp, fn, tn), sql_recall),
                        (metrics.precision(tp, fp, fn, tn), sql_precision)]:
        assert (python is None) == (sql is None)
        if python is not None:
            assert python == pytest.approx(float(sql))


def test_the_store_matrix_uses_the_shared_definitions():
    from data.schema import METRICS_SQL

    for expression in (metrics.F1_SQL, metrics.RECALL_SQL, metrics.PRECISION_SQL):
        assert expression in METRICS_SQL


def test_matrix_value_falls_back_to_recall_only_where_f1_is_undefined():
    assert metrics.matrix_value(2, 1, 1, 3) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert metrics.matrix_value(2, 0, 2, 0) == pytest.approx(0.5)
    assert metrics.matrix_value(0, 1, 0, 3) is None
    assert math.isnan(metrics.f1_at_zero([-1.0, 1.0], [0, 0]))
