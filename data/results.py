"""The store's results, one class per result kind (diagnostics/contracts/registry.py's KINDS):
each holds that kind's tables' writers and readers, so a diagnostic of an existing kind stores
through them unchanged and a new kind is one class here. `data.store.Store` is built from these
and the input tables (corpora, emails, splits, training sets, adapters, runs); `read_results`
and `read_result` read any kind by name, the way the page cache and pages use them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from data.metrics import COLLAPSE_MIN_EMAILS, COLLAPSED_SHARE, MIXED_LABELS
from data.records import ZERO_SHOT, Email, Explanation, Faithfulness, Prediction
from data.schema import SUSPECT_IDS_SQL, metrics_sql

# The explanations table's columns before created_at, in order: explanation_record() holds each.
EXPLANATION_COLUMNS = ("adapter_id", "email_id", "method", "params", "level", "score", "base_value", "evaluations",
                       "seconds", "deletion_area", "insertion_area", "random_deletion_area", "payload")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _email_from_row(row: dict) -> Email:
    return Email(
        id=row["id"], corpus=row["corpus"], subject=row["subject"], body=row["body"],
        label=int(row["label"]), sender=row["sender"] or "", receiver=row["receiver"] or "",
        date=row["date"] or "", urls=tuple(row["urls"] if row["urls"] is not None else ()),
        source_ref=row["source_ref"] or "", normalisation=row["normalisation"],
        truncated=bool(row["truncated"]),
    )


def _explanation_from_json(payload: str) -> Explanation:
    raw = json.loads(payload)
    curves = raw.pop("faithfulness")
    raw["spans"] = tuple(tuple(span) for span in raw["spans"])
    for name in ("fields", "values"):
        raw[name] = tuple(raw[name])
    if curves:
        curves = Faithfulness(**{k: tuple(v) if isinstance(v, list) else v for k, v in curves.items()})
    return Explanation(**raw, faithfulness=curves)


class MatrixResults:
    """Kind 'matrix' — predictions: the F1 matrix's cells and every view of the verdicts (inbox, one email's verdicts, disagreements, curated examples, paired verdicts)."""

    def predicted_email_ids(self, adapter_id: str) -> set[str]:
        rows = self.rows("SELECT email_id FROM predictions WHERE adapter_id = ?", [adapter_id])
        return {r[0] for r in rows}

    def add_prediction_shards(self, paths: Sequence[Path]) -> int:
        """Ingest Parquet shards of predictions (written by distributed workers); rows already
        stored for (adapter, email) are kept, so ingesting a shard twice adds nothing."""
        if not paths:
            return 0
        with self.transaction() as con:
            before = con.execute("SELECT count(*) FROM predictions").fetchone()[0]
            con.execute(
                "INSERT INTO predictions BY NAME SELECT run_id, adapter_id, model, email_id, corpus, score, "
                "predicted::TINYINT AS predicted, true_label::TINYINT AS true_label, truncated_tokens "
                "FROM read_parquet(?) ON CONFLICT DO NOTHING", [[str(p) for p in paths]])
            after = con.execute("SELECT count(*) FROM predictions").fetchone()[0]
        return after - before

    def add_predictions(self, predictions: list[Prediction]) -> int:
        """Insert predictions; rows already stored for (adapter, email) are kept, not duplicated."""
        if not predictions:
            return 0
        with self.transaction() as con, self._frames(con, new_predictions=pd.DataFrame([asdict(p) for p in predictions])):
            before = self.scalar("SELECT count(*) FROM predictions")
            con.execute(
                "INSERT INTO predictions BY NAME SELECT run_id, adapter_id, model, email_id, corpus, score, "
                "predicted::TINYINT AS predicted, true_label::TINYINT AS true_label, truncated_tokens "
                "FROM new_predictions ON CONFLICT DO NOTHING"
            )
            after = self.scalar("SELECT count(*) FROM predictions")
        return after - before

    def metrics(self, view: str = "original") -> pd.DataFrame:
        """F1, precision, recall, accuracy per (adapter, corpus), with in-domain flags, over one of
        data.schema.LABEL_VIEWS (the corpus' labels, corrected labels, without suspects, ...)."""
        return self.query(metrics_sql(view))

    def collapsed_scorers(self) -> pd.DataFrame:
        """Fine-tuned adapters that gave one verdict to nearly every test email of a label mix
        (data.metrics.COLLAPSED_SHARE): adapter_id, model, training_set, n, positive_share, label_share.
        The base model zero-shot is not judged: it was never trained to answer."""
        low, high = MIXED_LABELS
        return self.query(
            "SELECT p.adapter_id, any_value(p.model) AS model, any_value(a.training_set) AS training_set, "
            "count(*) AS n, avg(p.predicted) AS positive_share, avg(p.true_label) AS label_share "
            "FROM predictions p JOIN adapters a ON a.id = p.adapter_id GROUP BY p.adapter_id "
            "HAVING count(*) >= ? AND avg(p.true_label) BETWEEN ? AND ? "
            "AND greatest(avg(p.predicted), 1 - avg(p.predicted)) >= ? ORDER BY p.adapter_id",
            [COLLAPSE_MIN_EMAILS, low, high, COLLAPSED_SHARE])

    def scores(self, scorer: str) -> pd.DataFrame:
        """Every score one scorer (adapter or reference id) gave: corpus, email id, score, true label."""
        return self.query("SELECT corpus, email_id, score, true_label FROM predictions WHERE adapter_id = ? "
                          "ORDER BY corpus, email_id", [scorer])

    def paired_verdicts(self, scorer_a: str, scorer_b: str) -> pd.DataFrame:
        """The emails both scorers (adapter or reference ids) scored: corpus, true label and each verdict."""
        return self.query("SELECT a.corpus, a.email_id, a.true_label, a.predicted AS verdict_a, b.predicted AS verdict_b "
                          "FROM predictions a JOIN predictions b ON b.email_id = a.email_id AND b.adapter_id = ? "
                          "WHERE a.adapter_id = ? ORDER BY a.corpus, a.email_id", [scorer_b, scorer_a])

    def inbox(self, adapter_id: str | None = None, corpora: list[str] | None = None, label: int | None = None,
              outcome: str = "all", min_confidence: float = 0.0, text: str | None = None,
              limit: int = 50, offset: int = 0, suspects_only: bool = False) -> tuple[pd.DataFrame, int]:
        """One page of emails matching the filters, and how many match in all.

        With an adapter: only emails it scored, its score and verdict, sorted by how wrong
        it was (the logit difference against the true label). outcome: all, wrong, fp, fn,
        correct. min_confidence filters on |score|. text: case-insensitive match on
        sender, subject or body. suspects_only: the label audit's suspects. The label is the
        analysts' correction where there is one (`corrected`), else the corpus' own.
        """
        corrected = "emails e LEFT JOIN label_corrections c ON c.email_id = e.id AND c.undone_at IS NULL"
        label_sql = "coalesce(c.label, e.label)"
        where, params = ["1 = 1"], []
        if suspects_only:
            where.append(f"e.id IN {SUSPECT_IDS_SQL}")
        if corpora:
            where.append("e.corpus IN (SELECT unnest(?))")
            params.append(list(corpora))
        if label is not None:
            where.append("coalesce(c.label, e.label) = ?")
            params.append(int(label))
        if text:
            where.append("(e.subject ILIKE ? ESCAPE '\\' OR e.body ILIKE ? ESCAPE '\\' OR e.sender ILIKE ? ESCAPE '\\')")
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [pattern] * 3
        if adapter_id:
            source = f"{corrected} JOIN predictions p ON p.email_id = e.id AND p.adapter_id = ?"
            params.insert(0, adapter_id)
            conditions = {"all": "1 = 1", "wrong": f"p.predicted <> {label_sql}",
                          "correct": f"p.predicted = {label_sql}", "fp": f"p.predicted = 1 AND {label_sql} = 0",
                          "fn": f"p.predicted = 0 AND {label_sql} = 1"}
            if outcome not in conditions:
                raise ValueError(f"outcome must be one of {sorted(conditions)}")
            where += [conditions[outcome], "abs(p.score) >= ?"]
            params.append(float(min_confidence))
            columns = (f"p.score, p.predicted, CASE WHEN {label_sql} = 1 THEN -p.score ELSE p.score END AS wrongness, "
                       "p.truncated_tokens")
            order = "wrongness DESC, e.id"
        else:
            if outcome != "all":
                raise ValueError("pick an adapter to filter by false positives / negatives")
            source = corrected
            columns = ("NULL::DOUBLE AS score, NULL::TINYINT AS predicted, NULL::DOUBLE AS wrongness, "
                       "NULL::INTEGER AS truncated_tokens")
            order = "e.corpus, e.id"
        body = f"FROM {source} WHERE {' AND '.join(where)}"
        with self.connection() as con:
            total = con.execute(f"SELECT count(*) {body}", params).fetchall()[0][0]
            # The page first, then how many scorers got each of its (at most `limit`) emails wrong:
            # counting per email over the whole predictions table would cost a pass over all of it.
            page = con.execute(
                f"WITH page AS (SELECT e.id, e.corpus, e.sender, e.subject, e.date, {label_sql} AS label, "
                f"e.label AS original_label, c.label IS NOT NULL AS corrected, "
                f"e.id IN {SUSPECT_IDS_SQL} AS suspected, "
                f"{columns} {body} ORDER BY {order} LIMIT ? OFFSET ?), "
                f"tally AS (SELECT p.email_id, count(*) FILTER (p.predicted <> page.label) AS adapters_wrong, "
                f"count(*) AS adapters_scored FROM predictions p JOIN page ON page.id = p.email_id GROUP BY p.email_id) "
                f"SELECT page.*, coalesce(t.adapters_wrong, 0) AS adapters_wrong, "
                f"coalesce(t.adapters_scored, 0) AS adapters_scored FROM page LEFT JOIN tally t ON t.email_id = page.id "
                f"ORDER BY {order.replace('e.', 'page.')}", [*params, int(limit), int(offset)]).df()
        return page, total

    def email(self, email_id: str) -> Email | None:
        found = self.emails_by_ids([email_id])
        return found[0] if found else None

    def verdicts(self, email_id: str) -> pd.DataFrame:
        """Every stored prediction for one email, with the adapter's training set."""
        return self.query(
            f"SELECT p.adapter_id, p.model, coalesce(a.training_set, '{ZERO_SHOT}') AS training_set, p.score, "
            "p.predicted, p.true_label, p.truncated_tokens, p.run_id FROM predictions p LEFT JOIN scorers a ON a.id = p.adapter_id "
            "WHERE p.email_id = ? ORDER BY p.model, training_set", [email_id])

    def disagreements(self, corpus: str, adapter_ids: list[str], limit: int = 50) -> pd.DataFrame:
        """Emails of a corpus that every given adapter scored and on which their verdicts differ,
        widest score spread first."""
        return self.query(
            "SELECT e.id, e.subject, e.label, sum(p.predicted) AS say_phishing, count(*) AS adapters, "
            "max(p.score) - min(p.score) AS spread FROM predictions p JOIN emails e ON e.id = p.email_id "
            "WHERE e.corpus = ? AND p.adapter_id IN (SELECT unnest(?)) GROUP BY e.id, e.subject, e.label "
            "HAVING count(*) = ? AND min(p.predicted) <> max(p.predicted) ORDER BY spread DESC, e.id LIMIT ?",
            [corpus, list(adapter_ids), len(adapter_ids), int(limit)])

    def curated_examples(self, per_corpus: int = 2, user_limit: int = 6) -> pd.DataFrame:
        """Emails worth showing live: per corpus, those most adapters got wrong (most wrong
        first) and the clearest correct phishing; and the user's own saved emails."""
        return self.query(
            "WITH verdicts AS (SELECT p.email_id, avg(CASE WHEN p.true_label = 1 THEN -p.score ELSE p.score END) "
            "  AS wrongness, sum((p.predicted <> p.true_label)::INTEGER) AS wrong, count(*) AS adapters "
            "  FROM predictions p GROUP BY p.email_id), "
            "ranked AS (SELECT e.id, e.corpus, e.subject, e.label, v.wrong, v.adapters, v.wrongness, "
            "  CASE WHEN v.wrong > 0 THEN 'most adapters wrong' ELSE 'clear phishing, all right' END AS why, "
            "  row_number() OVER (PARTITION BY e.corpus, v.wrong > 0 ORDER BY v.wrong DESC, "
            "    v.wrongness * (CASE WHEN v.wrong > 0 THEN 1 ELSE -1 END) DESC, e.id) AS rank "
            "  FROM emails e JOIN verdicts v ON v.email_id = e.id WHERE e.corpus <> 'user' "
            "    AND (v.wrong > 0 OR e.label = 1)) "
            "SELECT id, corpus, subject, label, wrong, adapters, why FROM ranked WHERE rank <= ? "
            "UNION ALL (SELECT e.id, e.corpus, e.subject, e.label, NULL, NULL, 'saved by you' FROM emails e "
            "  WHERE e.corpus = 'user' ORDER BY e.id LIMIT ?) ORDER BY corpus, why, id",
            [int(per_corpus), int(user_limit)])


class TokenMapResults:
    """Kind 'token_map' — explanations: one email's attributions per scorer and method, and their word features (drivers)."""

    def add_explanation(self, explanation: Explanation, corpus: str,
                        features: list[tuple[str, float]] | None = None) -> None:
        """Cache an explanation (replacing one with the same key) and its features, if given."""
        record = self.explanation_record(explanation, corpus, features or [])
        key = [record["adapter_id"], record["email_id"], record["method"], record["params"]]
        with self.transaction() as con:
            con.execute("DELETE FROM explanations WHERE adapter_id = ? AND email_id = ? AND method = ? AND params = ?", key)
            con.execute("INSERT INTO explanations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        [record[c] for c in EXPLANATION_COLUMNS] + [_now()])
            if features is not None:
                con.execute("DELETE FROM attribution_features WHERE adapter_id = ? AND email_id = ? AND method = ? "
                            "AND params = ?", key)
                rows = pd.DataFrame({"adapter_id": record["adapter_id"], "method": record["method"],
                                     "params": record["params"], "email_id": record["email_id"], "corpus": corpus,
                                     "feature": [f["feature"] for f in record["features"]],
                                     "value": [f["value"] for f in record["features"]]})
                if len(rows):
                    with self._frames(con, new_features=rows):
                        con.execute("INSERT INTO attribution_features BY NAME SELECT * FROM new_features")

    @staticmethod
    def explanation_record(explanation: Explanation, corpus: str, features: list[tuple[str, float]]) -> dict:
        """One explanation and its features as a flat record: a row of an explanation shard
        (Parquet, written by distributed workers; see add_explanation_shards)."""
        e, f = explanation, explanation.faithfulness
        return {"adapter_id": e.adapter_id, "email_id": e.email_id, "method": e.method, "params": e.params,
                "corpus": corpus, "level": e.level, "score": e.score, "base_value": e.base_value,
                "evaluations": e.evaluations, "seconds": e.seconds,
                "deletion_area": f.deletion_area if f else None, "insertion_area": f.insertion_area if f else None,
                "random_deletion_area": f.random_deletion_area if f else None, "payload": json.dumps(asdict(e)),
                "features": [{"feature": name, "value": float(value)} for name, value in features]}

    def add_explanation_shards(self, paths: Sequence[Path]) -> int:
        """Ingest Parquet shards of explanation records, replacing explanations with the same
        key (adapter, email, method, params) and their features: ingesting twice changes nothing."""
        if not paths:
            return 0
        files = [str(p) for p in paths]
        same = ("t.adapter_id = s.adapter_id AND t.email_id = s.email_id AND t.method = s.method "
                "AND t.params = s.params")
        with self.transaction() as con:  # a failure rolls back the temporary table too
            con.execute("CREATE TEMP TABLE shard AS SELECT * FROM read_parquet(?)", [files])
            con.execute(f"DELETE FROM explanations t USING shard s WHERE {same}")
            con.execute(f"DELETE FROM attribution_features t USING shard s WHERE {same}")
            con.execute(f"INSERT INTO explanations SELECT {', '.join(EXPLANATION_COLUMNS)}, now() FROM shard")
            con.execute("INSERT INTO attribution_features SELECT adapter_id, method, params, email_id, corpus, "
                        "f.feature, f.value FROM (SELECT *, unnest(features) AS f FROM shard)")
            count = con.execute("SELECT count(*) FROM shard").fetchone()[0]
            con.execute("DROP TABLE shard")
        return count

    def explanation(self, adapter_id: str, email_id: str, method: str, params: str) -> Explanation | None:
        found = self.rows("SELECT payload FROM explanations WHERE adapter_id = ? AND email_id = ? AND method = ? "
                          "AND params = ?", [adapter_id, email_id, method, params])
        return _explanation_from_json(found[0][0]) if found else None

    def explained_email_ids(self, adapter_id: str, method: str, params: str) -> set[str]:
        rows = self.rows("SELECT DISTINCT email_id FROM attribution_features WHERE adapter_id = ? AND method = ? "
                         "AND params = ?", [adapter_id, method, params])
        return {r[0] for r in rows}

    def explanation_sweeps(self) -> pd.DataFrame:
        """Which (adapter, method, params, corpus) have corpus-level features, and for how many emails."""
        return self.query(
            f"SELECT f.adapter_id, coalesce(a.training_set, '{ZERO_SHOT}') AS training_set, f.method, f.params, "
            "f.corpus, count(DISTINCT f.email_id) AS emails FROM attribution_features f "
            "LEFT JOIN adapters a ON a.id = f.adapter_id GROUP BY ALL ORDER BY training_set, f.corpus")

    def drivers(self, adapter_id: str, method: str, params: str, corpora: list[str] | None = None) -> pd.DataFrame:
        """Per feature over the explained emails: in how many it occurs, its mean and total value.

        A feature's value in one email is the sum over its occurrences there.
        """
        where, args = "adapter_id = ? AND method = ? AND params = ?", [adapter_id, method, params]
        if corpora:
            where += " AND corpus IN (SELECT unnest(?))"
            args.append(list(corpora))
        return self.query(
            f"WITH per_email AS (SELECT feature, email_id, sum(value) AS value FROM attribution_features "
            f"WHERE {where} GROUP BY feature, email_id), "
            f"n AS (SELECT count(DISTINCT email_id) AS n FROM attribution_features WHERE {where}) "
            f"SELECT feature, count(*) AS emails, sum(value) / any_value(n.n) AS mean_value, sum(value) AS total, "
            f"avg(value) AS mean_when_present FROM per_email, n GROUP BY feature ORDER BY abs(sum(value)) DESC",
            args + args)

    def feature_document_frequency(self, features: list[str], sample_per_corpus: int = 2000,
                                   seed: int = 0) -> pd.DataFrame:
        """Share of each corpus' emails (any label; a seeded sample) whose text contains each feature.

        Words are split on whitespace, a URL becomes its host, and leading/trailing
        non-alphanumerics are stripped, as diagnostics.analyses.drivers.feature_of does.
        """
        if not features:
            return pd.DataFrame(columns=["corpus", "feature", "share"])
        return self.query(
            "WITH sample AS (SELECT id, corpus, lower(coalesce(sender, '') || ' ' || subject || ' ' || body) AS text "
            "  FROM emails QUALIFY row_number() OVER (PARTITION BY corpus ORDER BY hash(id || ?)) <= ?), "
            "sizes AS (SELECT corpus, count(*) AS n FROM sample GROUP BY corpus), "
            "words AS (SELECT DISTINCT corpus, id, regexp_replace(CASE WHEN regexp_matches(u, '^(https?://|www\\.)') "
            "  THEN regexp_extract(u, '^(?:https?://)?(?:[^/@\\s]*@)?([^/:?#\\s]*)', 1) ELSE w END, "
            "  '^[^a-z0-9]+|[^a-z0-9]+$', '', 'g') AS feature "
            "  FROM (SELECT corpus, id, w, ltrim(w, '(<[') AS u "
            "        FROM (SELECT corpus, id, unnest(string_split_regex(text, '\\s+')) AS w FROM sample))) "
            "SELECT s.corpus, f.feature, coalesce(count(w.id), 0) / any_value(s.n) AS share "
            "FROM sizes s CROSS JOIN (SELECT unnest(?) AS feature) f "
            "LEFT JOIN words w ON w.corpus = s.corpus AND w.feature = f.feature "
            "GROUP BY s.corpus, f.feature ORDER BY f.feature, s.corpus",
            [str(seed), int(sample_per_corpus), list(features)])


class KeyedResults:
    """What the two registered-diagnostic tables (head_values, diagnostic_values) share: rows keyed by
    (diagnostic, adapter, params), replaced whole."""

    def _replace_result(self, table: str, key: list[str], rows: pd.DataFrame) -> None:
        """Write one result's rows, replacing what was stored under its (diagnostic, adapter, params) key."""
        with self.transaction() as con, self._frames(con, new_rows=rows):
            con.execute(f"DELETE FROM {table} WHERE diagnostic = ? AND adapter_id = ? AND params = ?", key)
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM new_rows")

    def _has_result(self, table: str, diagnostic: str, adapter_id: str, params: str) -> bool:
        return bool(self.scalar(f"SELECT count(*) FROM {table} WHERE diagnostic = ? AND adapter_id = ? AND params = ?",
                                [diagnostic, adapter_id, params]))


class HeadGridResults(KeyedResults):
    """Kind 'head_grid' — per-head values: head sweeps (estimated and exact effects, the logit lens) and registered per-head diagnostics."""

    def add_head_sweep(self, run_id: str, corpus: str, params: str, sweep) -> None:
        """Store a data.records.HeadSweep, replacing one with the same adapter and params."""
        effects = sweep.effects.assign(run_id=run_id, adapter_id=sweep.adapter_id, corpus=corpus, params=params,
                                       ablation=sweep.ablation, n_emails=sweep.n_emails)
        lens = sweep.lens.assign(run_id=run_id, adapter_id=sweep.adapter_id, corpus=corpus, params=params,
                                 n_emails=sweep.n_emails)
        key = [sweep.adapter_id, params]
        with self.transaction() as con, self._frames(con, new_effects=effects, new_lens=lens):
            con.execute("DELETE FROM head_effects WHERE adapter_id = ? AND params = ?", key)
            con.execute("DELETE FROM logit_lens WHERE adapter_id = ? AND params = ?", key)
            con.execute("INSERT INTO head_effects BY NAME SELECT * FROM new_effects")
            con.execute("INSERT INTO logit_lens BY NAME SELECT * FROM new_lens")

    def has_head_sweep(self, adapter_id: str, params: str) -> bool:
        return bool(self.scalar("SELECT count(*) FROM head_effects WHERE adapter_id = ? AND params = ?",
                                [adapter_id, params]))

    def head_sweeps(self) -> pd.DataFrame:
        """One row per stored head sweep: adapter, corpus, ablation, emails, heads checked exactly."""
        return self.query(
            f"SELECT h.adapter_id, coalesce(a.training_set, '{ZERO_SHOT}') AS training_set, h.corpus, h.ablation, "
            "h.params, any_value(h.n_emails) AS n_emails, count(*) FILTER (h.method = 'exact') AS exact_heads, "
            "any_value(h.run_id) AS run_id FROM head_effects h LEFT JOIN adapters a ON a.id = h.adapter_id "
            "GROUP BY ALL ORDER BY training_set, h.corpus, h.ablation")

    def head_effects(self, adapter_id: str, params: str) -> pd.DataFrame:
        """Per head of one sweep: the attribution estimate and, where checked, the exact effect."""
        return self.query(
            "SELECT layer, head, "
            "any_value(delta_logit) FILTER (method = 'attribution') AS estimated_delta_logit, "
            "any_value(delta_f1) FILTER (method = 'attribution') AS estimated_delta_f1, "
            "any_value(delta_logit) FILTER (method = 'exact') AS exact_delta_logit, "
            "any_value(delta_f1) FILTER (method = 'exact') AS exact_delta_f1, "
            "coalesce(exact_delta_logit, estimated_delta_logit) AS delta_logit, "
            "coalesce(exact_delta_f1, estimated_delta_f1) AS delta_f1 "
            "FROM head_effects WHERE adapter_id = ? AND params = ? GROUP BY layer, head ORDER BY layer, head",
            [adapter_id, params])

    def logit_lens(self, adapter_ids: list[str] | None = None) -> pd.DataFrame:
        """Stored dataset-averaged logit lens curves (one per adapter and sweep)."""
        where, args = ("WHERE l.adapter_id IN (SELECT unnest(?))", [adapter_ids]) if adapter_ids else ("", [])
        return self.query(
            f"SELECT l.adapter_id, coalesce(a.training_set, '{ZERO_SHOT}') AS training_set, l.corpus, l.params, "
            f"l.layer, l.mean_score, l.std_score, l.n_emails FROM logit_lens l LEFT JOIN adapters a "
            f"ON a.id = l.adapter_id {where} ORDER BY l.adapter_id, l.params, l.layer", args)

    def add_head_values(self, run_id: str, diagnostic: str, corpus: str, params: str, adapter_id: str,
                        values: pd.DataFrame) -> None:
        """Store a per-head diagnostic's rows (layer, head, value, spread, n_emails), replacing a
        result with the same diagnostic, adapter and params."""
        self._replace_result("head_values", [diagnostic, adapter_id, params],
                             values.assign(run_id=run_id, diagnostic=diagnostic, adapter_id=adapter_id, corpus=corpus,
                                           params=params))

    def has_head_values(self, diagnostic: str, adapter_id: str, params: str) -> bool:
        return self._has_result("head_values", diagnostic, adapter_id, params)

    def head_value_results(self, diagnostic: str) -> pd.DataFrame:
        """One row per stored result of a per-head diagnostic: adapter, training set, corpus, emails."""
        return self.query(
            f"SELECT v.adapter_id, coalesce(a.training_set, '{ZERO_SHOT}') AS training_set, v.corpus, v.params, "
            "any_value(v.n_emails) AS n_emails, any_value(v.run_id) AS run_id FROM head_values v "
            "LEFT JOIN adapters a ON a.id = v.adapter_id WHERE v.diagnostic = ? GROUP BY ALL "
            "ORDER BY training_set, v.corpus", [diagnostic])

    def head_values(self, diagnostic: str, adapter_id: str, params: str) -> pd.DataFrame:
        """Per head (and the remainder row, layer -1) of one stored result."""
        return self.query("SELECT layer, head, value, spread, n_emails FROM head_values WHERE diagnostic = ? "
                          "AND adapter_id = ? AND params = ? ORDER BY layer, head", [diagnostic, adapter_id, params])


class SampleGridResults(KeyedResults):
    """Kind 'sample_grid' — sample grids: rows × columns of values with 95% intervals per scorer and corpus sample."""

    def add_diagnostic_values(self, run_id: str, diagnostic: str, corpus: str, params: str, adapter_id: str,
                              grid: pd.DataFrame) -> None:
        """Store a sample diagnostic's grid (row, column, value, low, high, n), replacing a result
        with the same diagnostic, scorer and params."""
        self._replace_result("diagnostic_values", [diagnostic, adapter_id, params],
                             grid.assign(run_id=run_id, diagnostic=diagnostic, adapter_id=adapter_id, corpus=corpus,
                                         params=params, position=range(len(grid))))

    def has_diagnostic_values(self, diagnostic: str, adapter_id: str, params: str) -> bool:
        return self._has_result("diagnostic_values", diagnostic, adapter_id, params)

    def diagnostic_results(self, diagnostic: str) -> pd.DataFrame:
        """One row per stored result of a sample diagnostic: scorer, training set, corpus, params, run."""
        return self.query(
            f"SELECT v.adapter_id, coalesce(any_value(s.training_set), '{ZERO_SHOT}') AS training_set, v.corpus, "
            "v.params, max(v.n) AS n, any_value(v.run_id) AS run_id FROM diagnostic_values v "
            "LEFT JOIN scorers s ON s.id = v.adapter_id WHERE v.diagnostic = ? "
            "GROUP BY v.adapter_id, v.corpus, v.params ORDER BY training_set, v.corpus", [diagnostic])

    def diagnostic_values(self, diagnostic: str, adapter_id: str, params: str) -> pd.DataFrame:
        """One stored grid: row, column, value, low, high, n."""
        return self.query('SELECT "row", "column", value, low, high, n FROM diagnostic_values WHERE diagnostic = ? '
                          'AND adapter_id = ? AND params = ? ORDER BY position', [diagnostic, adapter_id, params])


class NeighbourResults:
    """Kind 'neighbours' — answer-position vectors of training emails and the nearest of them to a query."""

    def add_training_vectors(self, adapter_id: str, training_set: str, email_ids: Sequence[str],
                             scores: Sequence[float], vectors) -> None:
        """Index training emails for nearest-neighbour search (rows already there are kept)."""
        frame = pd.DataFrame({"adapter_id": adapter_id, "training_set": training_set, "email_id": list(email_ids),
                              "score": [float(s) for s in scores], "vector": [list(map(float, v)) for v in vectors]})
        with self.transaction() as con, self._frames(con, new_vectors=frame):
            con.execute("INSERT INTO training_vectors SELECT adapter_id, training_set, email_id, score, "
                        "vector::FLOAT[] FROM new_vectors ON CONFLICT DO NOTHING")

    def indexed_email_ids(self, adapter_id: str, training_set: str) -> set[str]:
        return set(self.query("SELECT email_id FROM training_vectors WHERE adapter_id = ? AND training_set = ?",
                              [adapter_id, training_set])["email_id"])

    def nearest_training_emails(self, adapter_id: str, training_set: str, vector, k: int = 5) -> pd.DataFrame:
        """The k indexed training emails most similar (cosine) to a unit-length vector."""
        return self.query(
            "SELECT e.id AS email_id, list_cosine_similarity(v.vector, ?::FLOAT[]) AS similarity, e.label, e.corpus, "
            "e.subject, v.score FROM training_vectors v JOIN emails e ON e.id = v.email_id "
            "WHERE v.adapter_id = ? AND v.training_set = ? ORDER BY similarity DESC, e.id LIMIT ?",
            [list(map(float, vector)), adapter_id, training_set, k])

    def neighbour_indexes(self) -> pd.DataFrame:
        """Which (adapter, training set) have a nearest-training-email index, and how many emails it holds."""
        return self.query("SELECT adapter_id, training_set, count(*) AS emails FROM training_vectors "
                          "GROUP BY ALL ORDER BY training_set")


class EmailFlagResults:
    """Kind 'email_flags' — flagged emails of a corpus (suspected label errors) or pairs of emails
    (near-duplicates), each with a strength and its evidence, and per corpus the estimate of the
    flagged share with its 95% interval. A rerun of a diagnostic replaces its rows for the corpora it covers."""

    def replace_flags(self, run_id: str, diagnostic: str, corpora: Sequence[str], params: str,
                      flags: pd.DataFrame, summaries: pd.DataFrame) -> None:
        """Store flags (email_id, corpus, partner_id, strength, evidence) and summaries (corpus, n,
        flagged, estimate, low, high) of `corpora`, replacing what the diagnostic stored for them."""
        flags = flags.assign(run_id=run_id, diagnostic=diagnostic,
                             evidence=[json.dumps(e, default=str) for e in flags.get("evidence", [])])
        summaries = summaries.assign(run_id=run_id, diagnostic=diagnostic, params=params)
        with self.transaction() as con, self._frames(con, new_flags=flags, new_summaries=summaries):
            for table in ("email_flags", "flag_summaries"):
                con.execute(f"DELETE FROM {table} WHERE diagnostic = ? AND corpus IN (SELECT unnest(?))",
                            [diagnostic, list(corpora)])
            if len(flags):
                con.execute("INSERT INTO email_flags BY NAME SELECT * FROM new_flags ON CONFLICT DO NOTHING")
            if len(summaries):
                con.execute("INSERT INTO flag_summaries BY NAME SELECT * FROM new_summaries")

    def has_flags(self, diagnostic: str, params: str) -> bool:
        """Whether the diagnostic's stored result is under these params (for every corpus it covers)."""
        return bool(self.scalar("SELECT count(*) > 0 AND bool_and(params = ?) FROM flag_summaries WHERE diagnostic = ?",
                                [params, diagnostic]))

    def flag_summaries(self, diagnostic: str) -> pd.DataFrame:
        """Per corpus: emails audited, flagged, candidates, the estimate with its 95% interval, params and run."""
        return self.query("SELECT corpus, n, flagged, candidates, estimate, low, high, params, run_id "
                          "FROM flag_summaries WHERE diagnostic = ? ORDER BY corpus", [diagnostic])

    def flagged_emails(self, diagnostic: str, corpus: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """Flags of a diagnostic, strongest first, with each email's subject, its label as the
        corpus gives it and the analysts' current correction (NULL where none)."""
        where, args = ("AND f.corpus = ?", [diagnostic, corpus]) if corpus else ("", [diagnostic])
        return self.query(
            "SELECT f.email_id, f.corpus, f.partner_id, p.corpus AS partner_corpus, f.strength, f.evidence, "
            "e.subject, e.label, c.label AS corrected_label FROM email_flags f JOIN emails e ON e.id = f.email_id "
            "LEFT JOIN emails p ON p.id = f.partner_id "
            "LEFT JOIN label_corrections c ON c.email_id = f.email_id AND c.undone_at IS NULL "
            f"WHERE f.diagnostic = ? {where} ORDER BY f.strength DESC, f.email_id "
            + ("LIMIT ?" if limit else ""), args + ([limit] if limit else []))

    def flagged_ids(self, diagnostic: str) -> set[str]:
        return set(self.query("SELECT DISTINCT email_id FROM email_flags WHERE diagnostic = ?",
                              [diagnostic])["email_id"])


# What each kind's results are listed and read by: (the method listing stored results of a
# diagnostic, the method reading one of them by scorer and parameters).
KIND_READERS = {
    "token_map": ("explanation_sweeps", "drivers"),
    "head_grid": ("head_value_results", "head_values"),
    "sample_grid": ("diagnostic_results", "diagnostic_values"),
    "neighbours": ("neighbour_indexes", "nearest_training_emails"),
    "email_flags": ("flag_summaries", "flagged_emails"),
}


def read_results(store, kind: str, diagnostic: str) -> pd.DataFrame:
    """The stored results of one diagnostic of a kind (a row per scorer, corpus and parameters)."""
    lister = getattr(store, KIND_READERS[kind][0])
    return lister(diagnostic) if kind in ("head_grid", "sample_grid", "email_flags") else lister()


def read_result(store, kind: str, diagnostic: str, adapter_id: str, params: str) -> pd.DataFrame:
    """One stored result of a head_grid or sample_grid diagnostic: its values."""
    if kind not in ("head_grid", "sample_grid"):
        raise ValueError(f"results of kind {kind!r} are read with their own reader")
    return getattr(store, KIND_READERS[kind][1])(diagnostic, adapter_id, params)
