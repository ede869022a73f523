"""The store's schema as forward migrations, and the SQL of the F1 matrix.

SCHEMA_VERSION is the number of migrations; a store records the version it was built to and
data.store migrates it forward (after a backup) or refuses a newer one.
"""

from __future__ import annotations

from data.metrics import F1_SQL, PRECISION_SQL, RECALL_SQL
from data.records import ZERO_SHOT

# Each entry migrates from version i to i+1. Append, never edit: stores in the field
# were built by the old entries.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE corpora (
        name VARCHAR PRIMARY KEY,
        source VARCHAR NOT NULL,
        format VARCHAR NOT NULL,
        label_meaning VARCHAR NOT NULL,
        label_convention VARCHAR NOT NULL,
        synthetic BOOLEAN NOT NULL,
        normalisation VARCHAR NOT NULL,
        parsed INTEGER, parse_errors INTEGER, duplicates_within INTEGER,
        label_conflicts INTEGER, duplicates_across INTEGER, kept INTEGER,
        ingested_at TIMESTAMP NOT NULL
    );
    CREATE TABLE emails (
        id VARCHAR PRIMARY KEY,
        corpus VARCHAR NOT NULL,
        sender VARCHAR, receiver VARCHAR, date VARCHAR,
        subject VARCHAR NOT NULL,
        body VARCHAR NOT NULL,
        urls VARCHAR[] NOT NULL,
        label TINYINT NOT NULL,
        source_ref VARCHAR,
        normalisation VARCHAR NOT NULL,
        truncated BOOLEAN NOT NULL
    );
    CREATE TABLE ingest_errors (corpus VARCHAR, source_ref VARCHAR, error VARCHAR);
    CREATE TABLE splits (
        email_id VARCHAR PRIMARY KEY,
        corpus VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        seed INTEGER NOT NULL
    );
    CREATE TABLE training_sets (
        name VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL,
        corpora VARCHAR[] NOT NULL,
        size INTEGER NOT NULL,
        seed INTEGER NOT NULL,
        created_at TIMESTAMP NOT NULL
    );
    CREATE TABLE training_set_emails (
        training_set VARCHAR NOT NULL,
        email_id VARCHAR NOT NULL,
        PRIMARY KEY (training_set, email_id)
    );
    CREATE TABLE adapters (
        id VARCHAR PRIMARY KEY,
        model VARCHAR NOT NULL,
        base_weights_sha256 VARCHAR NOT NULL,
        architecture VARCHAR NOT NULL,
        training_set VARCHAR NOT NULL,
        path VARCHAR NOT NULL,
        hyperparameters JSON,
        seed INTEGER,
        train_loss DOUBLE[],
        n_train INTEGER,
        seconds DOUBLE,
        created_at VARCHAR
    );
    CREATE TABLE runs (
        id VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        params JSON,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        error VARCHAR
    );
    CREATE TABLE predictions (
        run_id VARCHAR NOT NULL,
        adapter_id VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        email_id VARCHAR NOT NULL,
        corpus VARCHAR NOT NULL,
        score DOUBLE NOT NULL,
        predicted TINYINT NOT NULL,
        true_label TINYINT NOT NULL,
        PRIMARY KEY (adapter_id, email_id)
    );
    """,
    # v2: how many of the email's tokens the scoring budget cut, so truncation is shown, not
    # silent. NULL for predictions made before: unknown, not zero.
    """
    ALTER TABLE predictions ADD COLUMN truncated_tokens INTEGER;
    """,
    # v3: cached explanations (the whole record as JSON, key columns for lookups) and
    # their word-level values as features, for corpus-level aggregation in SQL.
    """
    CREATE TABLE explanations (
        adapter_id VARCHAR NOT NULL,
        email_id VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        params VARCHAR NOT NULL,
        level VARCHAR NOT NULL,
        score DOUBLE NOT NULL,
        base_value DOUBLE NOT NULL,
        evaluations INTEGER NOT NULL,
        seconds DOUBLE NOT NULL,
        deletion_area DOUBLE,
        insertion_area DOUBLE,
        random_deletion_area DOUBLE,
        payload JSON NOT NULL,
        created_at TIMESTAMP NOT NULL,
        PRIMARY KEY (adapter_id, email_id, method, params)
    );
    CREATE TABLE attribution_features (
        adapter_id VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        params VARCHAR NOT NULL,
        email_id VARCHAR NOT NULL,
        corpus VARCHAR NOT NULL,
        feature VARCHAR NOT NULL,
        value DOUBLE NOT NULL
    );
    """,
    # v4: head sweeps (Heads page): each head's ablation effect, estimated (attribution
    # patching) or exact, and the logit lens averaged over the same emails.
    """
    CREATE TABLE head_effects (
        run_id VARCHAR NOT NULL,
        adapter_id VARCHAR NOT NULL,
        corpus VARCHAR NOT NULL,
        params VARCHAR NOT NULL,
        ablation VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        layer SMALLINT NOT NULL,
        head SMALLINT NOT NULL,
        delta_logit DOUBLE NOT NULL,
        delta_f1 DOUBLE NOT NULL,
        n_emails INTEGER NOT NULL,
        PRIMARY KEY (adapter_id, params, method, layer, head)
    );
    CREATE TABLE logit_lens (
        run_id VARCHAR NOT NULL,
        adapter_id VARCHAR NOT NULL,
        corpus VARCHAR NOT NULL,
        params VARCHAR NOT NULL,
        layer SMALLINT NOT NULL,
        mean_score DOUBLE NOT NULL,
        std_score DOUBLE NOT NULL,
        n_emails INTEGER NOT NULL,
        PRIMARY KEY (adapter_id, params, layer)
    );
    """,
    # v5: reference models (TF-IDF + logistic regression) that score the same test samples;
    # `scorers` names every id predictions can carry, adapter or reference, with its training set.
    """
    CREATE TABLE reference_models (
        id VARCHAR PRIMARY KEY,
        model VARCHAR NOT NULL,
        training_set VARCHAR NOT NULL,
        hyperparameters JSON NOT NULL,
        seed INTEGER NOT NULL,
        n_train INTEGER NOT NULL,
        seconds DOUBLE NOT NULL,
        created_at TIMESTAMP NOT NULL
    );
    CREATE VIEW scorers AS
        SELECT id, model, training_set FROM adapters
        UNION ALL SELECT id, model, training_set FROM reference_models;
    """,
    # v6: per-head diagnostics (diagnostics.analyses.per_head): one value per head, averaged over a
    # corpus sample, under the diagnostic's registry name; (layer, head) = (-1, -1) is the remainder.
    """
    CREATE TABLE head_values (
        run_id VARCHAR NOT NULL,
        diagnostic VARCHAR NOT NULL,
        adapter_id VARCHAR NOT NULL,
        corpus VARCHAR NOT NULL,
        params VARCHAR NOT NULL,
        layer SMALLINT NOT NULL,
        head SMALLINT NOT NULL,
        value DOUBLE NOT NULL,
        spread DOUBLE NOT NULL,
        n_emails INTEGER NOT NULL,
        PRIMARY KEY (diagnostic, adapter_id, params, layer, head)
    );
    """,
    # v7: sample diagnostics (diagnostics.analyses.sample_grid): a small grid of values with 95% intervals
    # per (diagnostic, scorer, corpus, params), e.g. counterfactual × measure or layer × accuracy.
    """
    CREATE TABLE diagnostic_values (
        run_id VARCHAR NOT NULL,
        diagnostic VARCHAR NOT NULL,
        adapter_id VARCHAR NOT NULL,
        corpus VARCHAR NOT NULL,
        params VARCHAR NOT NULL,
        "row" VARCHAR NOT NULL,
        "column" VARCHAR NOT NULL,
        value DOUBLE,
        low DOUBLE,
        high DOUBLE,
        n INTEGER NOT NULL,
        position INTEGER NOT NULL,  -- the diagnostic's own order of its rows and columns
        PRIMARY KEY (diagnostic, adapter_id, params, "row", "column")
    );
    """,
    # v8: nearest training emails (diagnostics.analyses.neighbours): each training email's unit-length
    # answer-position state and score, per (adapter, training set).
    """
    CREATE TABLE training_vectors (
        adapter_id VARCHAR NOT NULL,
        training_set VARCHAR NOT NULL,
        email_id VARCHAR NOT NULL,
        score DOUBLE NOT NULL,
        vector FLOAT[] NOT NULL,
        PRIMARY KEY (adapter_id, training_set, email_id)
    );
    """,
    # v9: held-out corpora (ingest --eval-only): every email in the test split, none in any
    # training set; the matrix shows them as their own column group.
    """
    CREATE TABLE held_out_corpora (name VARCHAR PRIMARY KEY);
    """,
    # v10: the process that runs each run (pid, host, start time), so a run whose process is gone
    # reads as interrupted instead of running forever; and the command that reruns it.
    """
    CREATE TABLE run_processes (
        run_id VARCHAR PRIMARY KEY,
        pid INTEGER NOT NULL,
        host VARCHAR NOT NULL,
        process_start VARCHAR NOT NULL,
        command VARCHAR
    );
    """,
    # v11: the label and leakage audits. An analyst's corrected labels, kept beside the corpus'
    # own (emails.label is never changed; undoing a correction stamps undone_at, so the history
    # stays); and flagged emails (diagnostics of kind 'email_flags': suspected label errors, pairs
    # of near-duplicate emails) with each corpus' estimate and its 95% interval.
    """
    CREATE TABLE label_corrections (
        email_id VARCHAR NOT NULL,
        label TINYINT NOT NULL,
        note VARCHAR NOT NULL,
        corrected_at TIMESTAMP NOT NULL,
        undone_at TIMESTAMP,
        PRIMARY KEY (email_id, corrected_at)
    );
    CREATE TABLE email_flags (
        run_id VARCHAR NOT NULL,
        diagnostic VARCHAR NOT NULL,
        email_id VARCHAR NOT NULL,
        corpus VARCHAR NOT NULL,
        partner_id VARCHAR NOT NULL,  -- the other email of a pair; '' for a flag on one email
        strength DOUBLE NOT NULL,  -- how sure the flag is (the diagnostic says on what scale)
        evidence JSON,
        PRIMARY KEY (diagnostic, email_id, partner_id)
    );
    CREATE TABLE flag_summaries (
        run_id VARCHAR NOT NULL,
        diagnostic VARCHAR NOT NULL,
        corpus VARCHAR NOT NULL,
        params VARCHAR NOT NULL,
        n INTEGER NOT NULL,
        flagged INTEGER NOT NULL,
        candidates INTEGER,  -- what the diagnostic weighed (label audit: verdict against the label)
        estimate DOUBLE,
        low DOUBLE,
        high DOUBLE,
        PRIMARY KEY (diagnostic, corpus)
    );
    """,
    # v12: scores from detectors PhishLens does not run (data.imported_scores): each imported score file
    # as a scorer (its predictions carry its id), and the rows it could not use, kept to be listed.
    """
    CREATE TABLE imported_scorers (
        id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        score_column VARCHAR NOT NULL,
        threshold DOUBLE NOT NULL,
        n_rows INTEGER NOT NULL,
        created_at TIMESTAMP NOT NULL
    );
    CREATE TABLE score_import_problems (
        scorer_id VARCHAR NOT NULL,
        "row" INTEGER NOT NULL,
        value VARCHAR,
        problem VARCHAR NOT NULL,
        skipped BOOLEAN NOT NULL  -- true: a refused row the import was told to skip; false: left out of the matrix
    );
    CREATE OR REPLACE VIEW scorers AS
        SELECT id, model, training_set FROM adapters
        UNION ALL SELECT id, model, training_set FROM reference_models
        UNION ALL SELECT id, 'scores', name || ' (scores only)' FROM imported_scorers;
    """,
]

LABEL_AUDIT = "label-audit"  # the registry names whose flags the label views below read
NEAR_DUPLICATES = "near-duplicates"

# The predictions each matrix view is computed over: the corpus' labels as given, the analysts'
# corrected labels, without the emails the label audit suspects, and without each scorer's test
# emails that near-duplicate an email of its own training set.
# The label audit's suspects (a subquery of email ids), and whether a prediction `p` is of a test email
# that near-duplicates an email of its scorer's own training set (a condition on `p`).
SUSPECT_IDS_SQL = f"(SELECT email_id FROM email_flags WHERE diagnostic = '{LABEL_AUDIT}')"
LEAKED_SQL = f"""EXISTS (
        SELECT 1 FROM email_flags f JOIN scorers s ON s.id = p.adapter_id
        JOIN training_set_emails t ON t.training_set = s.training_set AND t.email_id = f.partner_id
        WHERE f.diagnostic = '{NEAR_DUPLICATES}' AND f.email_id = p.email_id)"""

LABEL_VIEWS = {
    "original": "predictions",
    "corrected": "(SELECT p.* REPLACE (coalesce(c.label, p.true_label) AS true_label) FROM predictions p "
                 "LEFT JOIN label_corrections c ON c.email_id = p.email_id AND c.undone_at IS NULL)",
    "without suspects": f"(SELECT * FROM predictions WHERE email_id NOT IN {SUSPECT_IDS_SQL})",
    "without near-duplicates": f"(SELECT p.* FROM predictions p WHERE NOT {LEAKED_SQL})",
}


# How a page names each view (Overview's and the Study page's Labels switch).
LABEL_VIEW_TITLES = {"original": "as the corpora label them", "corrected": "with analysts' corrections",
                     "without suspects": "without suspected label errors",
                     "without near-duplicates": "without near-duplicates of training emails"}


def metrics_sql(view: str = "original") -> str:
    """Metrics per (adapter, corpus) over one of LABEL_VIEWS. F1 and precision are NULL where the
    evaluated sample holds one class only: there they would measure nothing but recall."""
    if view not in LABEL_VIEWS:
        raise ValueError(f"no label view {view!r}; known: {', '.join(LABEL_VIEWS)}")
    return _METRICS_SQL.replace("FROM predictions\n", f"FROM {LABEL_VIEWS[view]} AS predictions\n", 1)


_METRICS_SQL = f"""
WITH counts AS (
    SELECT adapter_id, any_value(model) AS model, corpus,
           count(*) AS n,
           count(*) FILTER (true_label = 1 AND predicted = 1) AS tp,
           count(*) FILTER (true_label = 0 AND predicted = 1) AS fp,
           count(*) FILTER (true_label = 1 AND predicted = 0) AS fn,
           count(*) FILTER (true_label = 0 AND predicted = 0) AS tn,
           -- How much of the emails the scorer read: the share its token budget cut, and by how
           -- much (NULL where truncation was not recorded: predictions older than schema v2)
           avg((truncated_tokens > 0)::DOUBLE) AS cut_share,
           median(truncated_tokens) FILTER (truncated_tokens > 0) AS median_cut_tokens
    FROM predictions
    GROUP BY adapter_id, corpus
)
SELECT c.*,
       (tp + fn) AS n_positive,
       (tn + fp) AS n_negative,
       (tp + fn) > 0 AND (tn + fp) > 0 AS both_classes,
       {RECALL_SQL} AS recall,
       {PRECISION_SQL} AS precision,
       {F1_SQL} AS f1,
       (tp + tn) / n AS accuracy,
       coalesce(a.training_set, '{ZERO_SHOT}') AS training_set,
       coalesce(ts.kind, '{ZERO_SHOT}') AS paradigm,
       coalesce(list_contains(ts.corpora, c.corpus), false) AS in_domain,
       c.corpus IN (SELECT name FROM held_out_corpora) AS held_out
FROM counts c
LEFT JOIN scorers a ON a.id = c.adapter_id
LEFT JOIN training_sets ts ON ts.name = a.training_set
ORDER BY c.model, paradigm, c.adapter_id, c.corpus
"""
METRICS_SQL = metrics_sql()

SCHEMA_VERSION = len(MIGRATIONS)
