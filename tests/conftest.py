"""Shared fixtures: real corpora, the real default model, a tiny model, temp stores."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from data.settings import PROJECT_ROOT, Settings, load_settings
from data.store import Store

SHARED_DATA = (PROJECT_ROOT.parent / "shared" / "data").resolve()

# A phishing mail that tries everything a page must never do: run script, fetch remote
# content, offer live links.
HOSTILE_EMAIL = """From: "Bank" <alert@bank.test>
Subject: <script>alert('subject')</script> verify now
Content-Type: text/html; charset=utf-8

<html><body><script>alert('x')</script><img src="http://tracker.test/p.gif" onerror="alert(1)">
<p style="background:url(http://evil.test/bg.png)">Verify **now** at
<a href="javascript:alert(2)">here</a> or <a href="http://phish.test/login">login</a></p></body></html>
"""



@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real corpora (never copied into the project)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real corpora not found at {SHARED_DATA} (../shared/data next to the project)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def raw_samples(shared_data) -> list[Path]:
    files = sorted((shared_data / "raw_samples").glob("*.eml"))
    assert files, "raw_samples holds no .eml files"
    return files


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings with a temp store and adapters folder; converted models stay in the shared cache."""
    return load_settings(home=tmp_path, store_path=tmp_path / "store.duckdb")


@pytest.fixture
def store(settings) -> Store:
    with Store.open(settings.store_path) as opened:
        yield opened


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The offline default model, converted once into the shared model cache."""
    from models.loading import prepare_model
    from models.registry import REGISTRY

    return prepare_model(REGISTRY["smollm2-135m"], load_settings().models_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(default_model_dir, tmp_path_factory) -> Path:
    """A random-weight 2-layer Llama with the default model's real tokenizer."""
    from models.tiny import build_tiny_model

    return build_tiny_model("llama", default_model_dir, tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_gemma_dir(default_model_dir, tmp_path_factory) -> Path:
    """A random-weight 2-layer Gemma 3 with the default model's real tokenizer."""
    from models.tiny import build_tiny_model

    return build_tiny_model("gemma3", default_model_dir, tmp_path_factory.mktemp("tiny-gemma3"))


# The prompt and label words of the causal-LM adapters trained "elsewhere" (plain peft) in the tests.
FOREIGN_TEMPLATE = "Message:\n{email}\nIs it a scam?\nAnswer:"
FOREIGN_WORDS = (" no", " yes")
FOREIGN_HEAD_TEMPLATE = "{email}"


def plain_peft_adapter(base_dir: Path, out_dir: Path, task: str, seed: int = 0, **meta) -> Path:
    """A LoRA adapter saved by plain peft (not PhishLens' trainer), as a user's own script would, with
    random non-zero LoRA weights (and head) so that it moves the score: task CAUSAL_LM or SEQ_CLS.
    `meta` is written to the folder's phishlens_import.json when given."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(seed)
    if task == "SEQ_CLS":
        model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=2)
    else:
        model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(task_type=task, r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if parameter.requires_grad:  # LoRA A and B (B starts at zero) and the head
                parameter.normal_(0.0, 0.2 if "lora_B" in name else 0.05)
    peft_model.save_pretrained(out_dir, safe_serialization=True)
    if meta:
        (Path(out_dir) / "phishlens_import.json").write_text(json.dumps(meta))
    return Path(out_dir)


@pytest.fixture(scope="session")
def synthetic_emails():
    from data.synthetic import generate_synthetic_corpora

    return generate_synthetic_corpora(per_corpus=60, seed=3)


@pytest.fixture(scope="session")
def real_emails(shared_data):
    """Three emails from each real corpus (each format and label convention)."""
    import itertools

    from data.corpora import discover_corpora, read_corpus
    from data.records import Email

    found = []
    for source in discover_corpora(shared_data):
        parsed = (m for m in read_corpus(source, lowercase=False, progress=False) if isinstance(m, Email))
        found += list(itertools.islice(parsed, 3))
    return found


@pytest.fixture(scope="session")
def real_store(shared_data, tmp_path_factory):
    """Every corpus of ../shared/data ingested and split once (about a minute)."""
    from diagnostics.runners.pipeline import ingest_folder

    home = tmp_path_factory.mktemp("real")
    real_settings = load_settings(home=home, store_path=home / "store.duckdb")
    with Store.open(real_settings.store_path) as opened:
        ingest_folder(opened, real_settings, shared_data, progress=False)
        yield opened


@pytest.fixture(scope="session")
def evaluated_settings(tiny_model_dir, tmp_path_factory) -> Settings:
    """A store built by the real protocol (synthetic corpora, tiny model): ingest,
    specialist + generalist adapters, evaluation of them and the zero-shot base."""
    from data.records import LoraSettings
    from diagnostics.runners.pipeline import ProtocolPlan, ingest_synthetic, run_protocol

    home = tmp_path_factory.mktemp("evaluated")
    built = load_settings(home=home, store_path=home / "store.duckdb", model=str(tiny_model_dir), device="cpu")
    plan = ProtocolPlan(specialists=("synthetic-corporate",), train_size=32, eval_size=20,
                        lora=LoraSettings(r=4, alpha=8, lr=5e-3, max_tokens=96, batch_size=8))
    with Store.open(built.store_path) as opened:
        # Without the planted label flips and near-duplicates: the tiny adapters' verdicts (which way a
        # collapsed one leans) move with every training email, and many tests read them. The audits'
        # tests plant their own (tests/pages/test_audits.py) or use synthetic_store_path.
        ingest_synthetic(opened, built, per_corpus=60, mistakes=False)
        run_protocol(opened, built, plan, progress=False)
    return built


@pytest.fixture(scope="session")
def two_family_settings(evaluated_settings, tiny_gemma_dir, tmp_path_factory) -> Settings:
    """The evaluated store with what a study adds: a second model family (a tiny random-weight Gemma 3)
    with its own specialist and generalist, a second seed of the Llama generalist, and both
    families' zero-shot bases, all evaluated on the same test samples."""
    import shutil

    from data.records import LoraSettings
    from diagnostics.analyses.evaluate import evaluate_as_configured, evaluation_targets
    from diagnostics.runners.pipeline import train_training_set

    home = tmp_path_factory.mktemp("two-family")
    shutil.copytree(evaluated_settings.home, home, dirs_exist_ok=True)
    llama = evaluated_settings.with_overrides(home=home, store_path=home / "store.duckdb")
    gemma_dir = tiny_gemma_dir
    gemma = llama.with_overrides(model=str(gemma_dir))
    lora = LoraSettings(r=4, alpha=8, lr=5e-3, max_tokens=96, batch_size=8)
    with Store.open(llama.store_path) as opened:
        # The copied adapters keep their folders' old paths in the store: point them at the copies.
        opened.execute("UPDATE adapters SET path = replace(path, ?, ?)", [str(evaluated_settings.home), str(home)])
        second_seed = train_training_set(opened, llama, "generalist", replace(lora, seed=14), progress=False)
        gemma_folders = [train_training_set(opened, gemma, name, lora, progress=False)
                         for name in ("specialist-synthetic-corporate", "generalist")]
        corpora = opened.corpus_names()
        evaluate_as_configured(opened, llama, evaluation_targets(llama.model, [second_seed], zero_shot=False),
                               corpora, 20, 96, progress=False)
        evaluate_as_configured(opened, gemma, evaluation_targets(gemma.model, gemma_folders), corpora, 20, 96,
                               progress=False)
    return llama


def spam_words_scores(emails) -> list[float]:
    """The probabilities a crude external filter gives (a stand-in for an API model or a mail filter the
    user scored elsewhere): high when the email has money words, low otherwise."""
    words = ("free", "money", "$", "click", "offer", "remove", "order")
    return [0.9 if any(w in (m.subject + " " + m.body).lower() for w in words) else 0.1 for m in emails]


@pytest.fixture(scope="session")
def byod_settings(evaluated_settings, shared_data, tmp_path_factory) -> Settings:
    """The evaluated store plus what a user brings: the real Ling-Spam corpus, a classification-head adapter
    trained with plain peft on the same tiny Llama (imported, evaluated on every corpus), and an external
    filter's score file for Ling-Spam's test emails (imported with its bad rows skipped: two unknown ids,
    a duplicate, a non-number; and some training emails, left out of the matrix)."""
    import shutil

    import pandas as pd

    from data.corpora import ingest_source, source_for_path
    from data.imported_scores import match_scores
    from data.splits import split_corpus
    from diagnostics.analyses.evaluate import evaluate_as_configured, evaluation_targets
    from diagnostics.runners.pipeline import import_trained_adapter
    from models.imported import ImportRequest

    home = tmp_path_factory.mktemp("byod")
    shutil.copytree(evaluated_settings.home, home, dirs_exist_ok=True)
    built = evaluated_settings.with_overrides(home=home, store_path=home / "store.duckdb")
    head = plain_peft_adapter(Path(built.model), tmp_path_factory.mktemp("foreign") / "seq-cls", "SEQ_CLS", seed=2,
                              prompt_template=FOREIGN_HEAD_TEMPLATE, name="seq-cls head")
    with Store.open(built.store_path) as opened:
        opened.execute("UPDATE adapters SET path = replace(path, ?, ?)", [str(evaluated_settings.home), str(home)])
        ingest_source(opened, source_for_path(shared_data / "LingSpam.csv.gz"), progress=False)
        split_corpus(opened, "LingSpam", seed=built.seed)
        generalist = opened.adapters().query("training_set == 'generalist'")["path"].iloc[0]
        evaluate_as_configured(opened, built, evaluation_targets(built.model, [Path(generalist)]), ["LingSpam"],
                               20, 96, progress=False)
        import_trained_adapter(opened, built, ImportRequest(head, built.model), sample_size=20, progress=False)
        emails = opened.test_emails()
        test = emails[emails["test"] & (emails["corpus"] == "LingSpam")]["id"].tolist()
        train = emails[~emails["test"] & (emails["corpus"] == "LingSpam")]["id"].tolist()[:3]
        mails = {m.id: m for m in opened.emails_by_ids(test + train)}
        frame = pd.DataFrame({"email_id": test + train,
                              "probability": spam_words_scores([mails[i] for i in test + train])})
        bad = pd.DataFrame({"email_id": ["0" * 24, "f" * 64, test[0], test[1]],
                            "probability": [0.5, 0.5, 0.2, "n/a"]})
        frame = pd.concat([frame, bad], ignore_index=True).assign(row=lambda f: range(1, len(f) + 1))
        frame["probability"] = frame["probability"].astype(str)
        matched = match_scores(frame, emails, set(emails.loc[emails["test"], "id"]), "spam-words filter")
        opened.add_imported_scores(matched, "filter-scores.csv", skip_bad_rows=True)
    return built


@pytest.fixture
def evaluated_copy(evaluated_settings, tmp_path) -> Settings:
    """A private copy of the evaluated_settings home (store and adapters) for tests that write to it."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(evaluated_settings.home, home)
    return evaluated_settings.with_overrides(home=home, store_path=home / "store.duckdb")


def tiny_study(model: str, **changes) -> dict:
    """A study spec (as parsed TOML) matching the evaluated_settings fixture's protocol: same training
    sets and LoRA settings, so the store already holds all of it."""
    raw = {"name": "tiny", "models": [model], "specialists": ["synthetic-corporate"], "seeds": [13],
           "train_size": 32, "eval_size": 20,
           "lora": {"r": 4, "alpha": 8, "lr": 5e-3, "max_tokens": 96, "batch_size": 8}}
    return {**raw, **changes}


def study_toml(raw: dict) -> str:
    """A spec dict written as TOML (top-level values, then the [lora] table)."""
    import json

    lines = [f"{key} = {json.dumps(value)}" for key, value in raw.items() if key != "lora"]
    lines += ["[lora]"] + [f"{key} = {json.dumps(value)}" for key, value in raw.get("lora", {}).items()]
    return "\n".join(lines) + "\n"


APP = str(Path(__file__).resolve().parents[1] / "app.py")


def open_app_page(monkeypatch, settings: Settings, page: str, max_tokens: int | None = None, **query):
    """An AppTest of the dashboard on `settings`' store, switched to `page` with `query` in the URL."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PHISHLENS_STORE", str(settings.store_path))
    monkeypatch.setenv("PHISHLENS_HOME", str(settings.home))
    monkeypatch.setenv("PHISHLENS_MODEL", settings.model)
    monkeypatch.setenv("PHISHLENS_DEVICE", "cpu")
    if max_tokens:
        monkeypatch.setenv("PHISHLENS_MAX_TOKENS", str(max_tokens))
    at = AppTest.from_file(APP, default_timeout=300).run()
    at.switch_page(page)
    for name, value in query.items():
        at.query_params[name] = value
    return at.run()


def damage_store(source: Path, target: Path, how: str) -> Path:
    """A copy of a store, damaged: 'truncated' (cut to half its length) or 'blocks' (the start of
    every other data block overwritten, so checksums fail where the header is intact)."""
    data = bytearray(source.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "blocks":
        block = 256 * 2**10  # DuckDB's block size; blocks start after a 12 KiB header
        for offset in range(12288 + block, len(data), 2 * block):
            data[offset: offset + 4096] = b"\xaa" * 4096
    else:
        raise ValueError(how)
    target.write_bytes(bytes(data))
    return target


@pytest.fixture(scope="session")
def synthetic_store_path(tmp_path_factory) -> Path:
    """A store holding the three synthetic corpora, ingested and split (no models): read-only use."""
    from diagnostics.runners.pipeline import ingest_synthetic

    home = tmp_path_factory.mktemp("synthetic-store")
    built = load_settings(home=home, store_path=home / "store.duckdb")
    with Store.open(built.store_path) as opened:
        ingest_synthetic(opened, built, per_corpus=240)
    return built.store_path


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def die_with_test_run() -> None:
    """preexec_fn for servers a test starts: SIGTERM when pytest dies, even by SIGKILL (Linux),
    so a killed test run leaves no dashboard behind (`cli.py serve` passes it on to Streamlit)."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextmanager
def dashboard_server(command: list[str], env: dict, log_path: Path, timeout: float = 120):
    """Start a dashboard server (`command`, run from the project root on a free port) and yield its
    URL once it answers; killed, with its children, on exit.

    Its output goes to `log_path`, never to a pipe nobody reads: once a pipe's 64 KiB fill, the
    server's next write blocks, and with it whichever page wrote (a model load's progress bar)."""
    import os
    import subprocess

    port = free_port()
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=PROJECT_ROOT, env={**env, "PHISHLENS_PORT": str(port)}, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_test_run)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_served(server, url, log_path, timeout)
        yield url
    finally:
        os.killpg(server.pid, 9)
        server.wait()


def log_tail(log_path: Path | None, chars: int = 3000) -> str:
    """The end of a server's log, for a failure message (without the colours of rich tracebacks)."""
    import re

    if log_path is None or not log_path.exists():
        return "(no log)"
    return re.sub(r"\x1b\[[0-9;]*m", "", log_path.read_text(errors="replace"))[-chars:]


def wait_until_served(process, url: str, log_path: Path | None = None, timeout: float = 120) -> None:
    """Block until `url`/_stcore/health answers; fail with the server's log (where it keeps one)
    if it exits or stalls."""
    import time
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"the app exited:\n{log_tail(log_path)}")
            time.sleep(0.5)
    pytest.fail(f"the app did not answer within {timeout:.0f} s:\n{log_tail(log_path)}")
