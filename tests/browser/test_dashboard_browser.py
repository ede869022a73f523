"""Real-browser tests: the README's launch command serves a small store; headless Debian
Chromium (driven by Playwright) opens every page, and a hostile email runs nothing and
fetches nothing. Screenshots go to test-artifacts/."""

import os
import shutil
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from data.corpora import save_user_email
from data.parse import make_email, parse_message_bytes
from tests.conftest import HOSTILE_EMAIL as HOSTILE
from tests.browser.conftest import SERVER_LOGS
from tests.conftest import dashboard_server, tiny_study

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# url path → the main element's text, and text that shows the page has finished its work
# (the default page, Overview, lives at the root).
PAGES = {"": ("F1 matrix", None), "inbox": ("Inbox", None), "analyze": ("Analyze an email", None),
         "explain": ("Explain an email", "map by words"),
         "compare": ("Compare models on one email", "Where adapters disagree"),
         "drivers": ("Drivers", None), "heads": ("Heads", "Top attended tokens"), "demo": ("Live demo", None), "corpora": ("Corpora", None),
         "runs": ("Run history", None)}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]


def _real_email():
    """A real phishing email from ../shared/data (Nazario), or None where the folder is absent."""
    from data.corpora import discover_corpora, read_corpus
    from data.records import Email

    data = ROOT.parent / "shared" / "data"
    if not data.is_dir():
        return None
    source = next((s for s in discover_corpora(data) if s.name == "Nazario"), None)
    if source is None:
        return None
    for mail in read_corpus(source, lowercase=False, progress=False):
        if isinstance(mail, Email) and 400 < len(mail.body) < 1500 and mail.subject:
            return mail
    return None


@pytest.fixture(scope="module")
def served(evaluated_settings, tmp_path_factory):
    """The app started with the README's command on a copy of the test store, plus a hostile email in it."""
    home = tmp_path_factory.mktemp("browser-home")
    shutil.copytree(evaluated_settings.home, home, dirs_exist_ok=True)
    fields, _ = parse_message_bytes(HOSTILE.encode())
    hostile = make_email(fields, "user", 1, "hostile.eml")
    save_user_email(home / "store.duckdb", hostile, label=1)
    real = _real_email()
    if real is not None:
        save_user_email(home / "store.duckdb", real, label=real.label)
    with _serve(home, {"PHISHLENS_MODEL": evaluated_settings.model}, "served") as url:
        yield url, hostile, real


def _serve(home: Path, env_extra: dict, fixture: str):
    """`bash tasks.sh run` (the README's command) on a store in `home`, logging to home/serve.log
    (which a failed test using `fixture` reports)."""
    SERVER_LOGS[fixture] = home / "serve.log"
    env = {**os.environ, "PHISHLENS_HOME": str(home), "PHISHLENS_STORE": str(home / "store.duckdb"),
           "PHISHLENS_DEVICE": "cpu", **env_extra}
    return dashboard_server(["bash", "tasks.sh", "run"], env, home / "serve.log")


@pytest.fixture(scope="module")
def served_default_model(real_store, default_model_dir, tmp_path_factory):
    """The default model with an adapter on real corpora: a small Nazario + Enron-Spam store copied
    from the real one, a quick specialist adapter and a small head sweep of it."""
    from data.records import LoraSettings
    from data.settings import load_settings
    from data.splits import build_specialist, specialist_name
    from data.store import Store
    from diagnostics.analyses.evaluate import EvaluationTarget, evaluate
    from diagnostics.analyses.head_sweep import sweep_corpus
    from diagnostics.runners.pipeline import train_training_set

    home = tmp_path_factory.mktemp("browser-default-model")
    for suffix in ("", ".wal"):
        source = Path(str(real_store.path) + suffix)
        if source.exists():
            shutil.copy(source, home / f"store.duckdb{suffix}")
    settings = load_settings(home=home, store_path=home / "store.duckdb", models_dir=default_model_dir.parent,
                             model="smollm2-135m", device="cpu", max_tokens=96)
    with Store.open(settings.store_path) as store:
        build_specialist(store, "EnronSpam", 24, settings.seed)
        folder = train_training_set(store, settings, specialist_name("EnronSpam"),
                                    LoraSettings(max_tokens=64, batch_size=8), progress=False)
        # Predictions make the store "non-empty": `tasks.sh run` would build the demo into an empty one.
        evaluate(store, [EvaluationTarget(settings.model, folder)], ["Nazario"], settings.models_dir, 6, 96,
                 settings.seed, "cpu", progress=False)
        sweep_corpus(store, EvaluationTarget(settings.model, folder), "Nazario", sample_size=6, max_tokens=96,
                     seed=settings.seed, top_k=3, models_dir=settings.models_dir)
        email_id = store.split_ids("Nazario", "test")["id"].iloc[0]
    with _serve(home, {"PHISHLENS_MODEL": "smollm2-135m", "PHISHLENS_MODELS": str(default_model_dir.parent),
                       "PHISHLENS_MAX_TOKENS": "96"}, "served_default_model") as url:
        yield url, specialist_name("EnronSpam"), email_id


@pytest.fixture(scope="module")
def served_two_families(two_family_settings, tmp_path_factory):
    """The app on a copy of the two-family store (tiny Llama and Gemma 3, two Llama generalist seeds),
    with the catalogue's names of the scorers the test opens."""
    from data.store import Store

    home = tmp_path_factory.mktemp("browser-two-families")
    shutil.copytree(two_family_settings.home, home, dirs_exist_ok=True)
    with Store.open(home / "store.duckdb") as store:
        store.execute("UPDATE adapters SET path = replace(path, ?, ?)", [str(two_family_settings.home), str(home)])
        scorers = store.scorer_catalogue([two_family_settings.model])
    with _serve(home, {"PHISHLENS_MODEL": two_family_settings.model}, "served_two_families") as url:
        yield url, scorers


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's launch() gives every browser a fresh, temporary user-data-dir of its own.
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield instance
        instance.close()


def _wait_for_text(page, text: str, timeout_ms: int) -> None:
    """Wait until `text` is visible; if the page shows an exception first, fail at once with it
    (instead of waiting out the timeout for text that will never come)."""
    exception = page.locator("[data-testid='stException']")
    page.get_by_text(text).first.or_(exception.first).first.wait_for(timeout=timeout_ms)
    if exception.count():
        pytest.fail(f"the page raised while waiting for {text!r}:\n{exception.first.inner_text()[:3000]}")


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    events = {"requests": [], "dialogs": [], "console": []}
    page.on("request", lambda r: events["requests"].append(r.url))
    page.on("console", lambda m: events["console"].append(m.text))

    def on_dialog(dialog):
        events["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(url)
    return page, events


@pytest.mark.parametrize("path,heading,ready", [(path, *marks) for path, marks in PAGES.items()])
def test_every_page_renders_without_exception(served, browser, path, heading, ready):
    url, _, _ = served
    page, _ = _open(browser, f"{url}/{path}")
    _wait_for_text(page, heading, 60_000)
    if ready:
        _wait_for_text(page, ready, 180_000)
    page.wait_for_timeout(1500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page-{path or 'overview'}.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.get_by_text("Page not found").count() == 0
    page.close()


def test_hostile_email_runs_nothing_and_fetches_nothing(served, browser):
    url, hostile, _ = served
    page, events = _open(browser, f"{url}/inbox?email={hostile.id}")
    _wait_for_text(page, "Visible text", 60_000)
    # st.dataframe draws on a canvas; its accessible cells are in the DOM but hidden
    page.get_by_text("hxxp://phish[.]test/login").first.wait_for(state="attached", timeout=30_000)
    page.wait_for_timeout(2000)
    page.screenshot(path=str(ARTIFACTS / "hostile-email.png"), full_page=True)
    _assert_no_script_ran_and_nothing_fetched(page, events, url)
    page.close()


def test_urls_and_query_values_are_shown_as_text_not_links(served, browser):
    """A payload in ?email= reaches an error message: no link, no image, nothing fetched (the
    browser is the judge of Markdown's autolinks, which AppTest cannot see)."""
    from urllib.parse import quote

    url, _, _ = served
    payload = "![t](http://evil.test/t.png)[go](http://evil.test/x) www.evil.test a@evil.test <b>b</b>:red[r]"
    page, events = _open(browser, f"{url}/explain?email={quote(payload)}")
    _wait_for_text(page, "in the store", 60_000)
    main = page.locator("[data-testid='stMain']")
    hrefs = main.locator("a").evaluate_all("links => links.map(a => a.href)")
    assert [h for h in hrefs if urlsplit(h).netloc != urlsplit(url).netloc] == [], hrefs
    assert main.locator("img").count() == 0 and main.locator("b").count() == 0
    page.screenshot(path=str(ARTIFACTS / "reflected-query.png"))
    _assert_no_script_ran_and_nothing_fetched(page, events, url)
    page.close()
    page, _ = _open(browser, f"{url}/heads?layer=abc")
    _wait_for_text(page, "not a whole number", 120_000)
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


def _assert_no_script_ran_and_nothing_fetched(page, events, url):
    assert events["dialogs"] == []
    own = urlsplit(url).netloc
    foreign = [r for r in events["requests"] if not r.startswith(("data:", "blob:")) and urlsplit(r).netloc != own]
    assert foreign == [], foreign
    assert page.locator("script:text('alert')").count() == 0
    assert page.locator("img[src*='tracker.test']").count() == 0
    assert page.locator("a[href*='phish.test'], a[href^='javascript']").count() == 0


def test_explain_map_of_a_hostile_email_is_escaped_text(served, browser):
    url, hostile, _ = served
    page, events = _open(browser, f"{url}/explain?email={hostile.id}&adapters=zero-shot&method=shap")
    _wait_for_text(page, "map by words", 120_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "hostile-explain.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    # the email's markup is on the page as text inside our spans, never as elements
    assert page.get_by_text("<script>alert('subject')</script>").count() >= 1
    _assert_no_script_ran_and_nothing_fetched(page, events, url)
    page.close()


def test_explain_page_on_a_real_email_shows_a_map(served, browser):
    url, _, real = served
    if real is None:
        pytest.skip("../shared/data is absent: no real email to explain")
    page, events = _open(browser, f"{url}/explain?email={real.id}&method=shap")
    _wait_for_text(page, "map by words", 180_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "page-explain-real-email.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("span[title^='+'], span[title^='-']").count() > 20  # hoverable words of the map
    _assert_no_script_ran_and_nothing_fetched(page, events, url)
    page.close()


def test_heads_page_on_the_default_model_with_an_adapter(served_default_model, browser):
    url, adapter, email_id = served_default_model
    page, events = _open(browser, f"{url}/heads?adapter={adapter}&email={email_id}&layer=29")
    _wait_for_text(page, "Top attended tokens", 180_000)
    page.wait_for_timeout(2000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-heads-default-model.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.get_by_text("Layer 29: attention from the answer position").count() >= 1
    page.get_by_role("tab", name="Head effects").click()
    _wait_for_text(page, f"{adapter} · Nazario · mean · 6 emails", 60_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "page-heads-effects.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    _assert_no_script_ran_and_nothing_fetched(page, events, url)
    page.close()


def test_study_html_export_opens_offline_with_its_figures(browser, evaluated_settings, tmp_path):
    from data.store import Store
    from diagnostics.analyses.study import parse_spec, plan_study, study_findings, study_results, summarize_study
    from diagnostics.analyses.study_report import study_figures, study_html

    spec = parse_spec(tiny_study(evaluated_settings.model))
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        results = study_results(store, spec, plan_study(store, spec), evaluated_settings.seed)
    summary = summarize_study(results)
    report = tmp_path / "study.html"
    report.write_text(study_html(spec, summary, study_findings(summary), study_figures(results, summary)))
    page = browser.new_page(viewport={"width": 1200, "height": 1800})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri())
    page.locator(".plot-container").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "study-report.png"), full_page=True)
    assert page.locator(".plot-container").count() == 2
    assert page.get_by_text("specialists reach").count() >= 1
    assert all(url.startswith("file://") or url.startswith("data:") for url in requests), requests
    page.close()


def test_two_families_side_by_side_and_a_url_reopens_the_same_scorers(served_two_families, browser):
    url, scorers = served_two_families
    page, events = _open(browser, f"{url}/overview")  # the default page by its own name
    _wait_for_text(page, "Architectures side by side", 60_000)
    page.wait_for_timeout(1500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "two-families-overview.png"), full_page=True)
    assert page.get_by_text("Page not found").count() == 0
    assert page.locator("[data-testid='stException']").count() == 0
    second_seed = scorers[scorers["name"].str.contains(r"\(seed 14\)")]["name"].iloc[0]
    gemma = scorers[(scorers["kind"] == "zero-shot") & scorers["model"].str.contains("gemma")]["name"].iloc[0]
    query = "&".join(f"adapters={quote(n)}" for n in (second_seed, gemma))
    page, events = _open(browser, f"{url}/explain?{query}&method=gradxinput")
    _wait_for_text(page, "map by words", 180_000)
    # The second scorer's section starts once the first's map and faithfulness curves are done.
    page.locator("h3", has_text=gemma).first.wait_for(timeout=180_000)
    page.get_by_text("map by words").nth(1).wait_for(timeout=180_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "two-families-explain.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    headings = page.locator("h3").all_inner_texts()
    assert any(second_seed in h for h in headings) and any(gemma in h for h in headings), headings
    _assert_no_script_ran_and_nothing_fetched(page, events, url)
    page.close()


@pytest.fixture(scope="module")
def served_audits(two_family_settings, tmp_path_factory):
    """The two-family store with planted label errors, both audits of the emails run and one
    suspect's label corrected."""
    from data.store import Store
    from tests.pages.test_audits import PLANTED
    from diagnostics.contracts.registry import diagnostic
    from diagnostics.runners.local import LocalExecutor, run_job

    home = tmp_path_factory.mktemp("browser-audits")
    shutil.copytree(two_family_settings.home, home, dirs_exist_ok=True)
    with Store.open(home / "store.duckdb") as store:
        store.execute("UPDATE emails SET label = 1 - label WHERE source_ref IN (SELECT unnest(?))", [PLANTED])
        for name in ("label-audit", "near-duplicates"):
            run_job(store, diagnostic(name).make_job(None, home / "models"), LocalExecutor(home / "models"),
                    progress=False)
        suspects = sorted(store.flagged_ids("label-audit"))
        store.correct_label(suspects[-1], 1 - store.email(suspects[-1]).label, "checked with the sender <b>by phone</b>")
    with _serve(home, {"PHISHLENS_MODEL": two_family_settings.model}, "served_audits") as url:
        yield url, suspects


def test_the_audits_of_the_emails_on_corpora_and_inbox(served_audits, browser):
    url, suspects = served_audits
    page, events = _open(browser, f"{url}/corpora")
    _wait_for_text(page, "Flagged emails of", 60_000)
    page.get_by_text("Flagged emails of").nth(1).wait_for(timeout=60_000)  # both audits drawn
    page.wait_for_timeout(1500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 4400})  # the page scrolls inside: show all of it
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "audits-corpora.png"))
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()
    none = quote("(none: browse all emails)")
    page, events = _open(browser, f"{url}/inbox?suspects=1&adapter={none}&email={suspects[-1]}")
    _wait_for_text(page, "Suspected label error.", 60_000)
    page.wait_for_timeout(1500)
    page.set_viewport_size({"width": 1400, "height": 3000})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "audits-inbox.png"))
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("main b", has_text="by phone").count() == 0  # the analyst's note is text, not markup
    _assert_no_script_ran_and_nothing_fetched(page, events, url)
    page.close()


@pytest.fixture(scope="module")
def served_byod(byod_settings, tmp_path_factory):
    """The app on a copy of the bring-your-own-detector store (an imported classification-head adapter,
    an imported score file, real Ling-Spam), with the imported head's name and a Ling-Spam test email."""
    from data.store import Store

    home = tmp_path_factory.mktemp("browser-byod")
    shutil.copytree(byod_settings.home, home, dirs_exist_ok=True)
    with Store.open(home / "store.duckdb") as store:
        store.execute("UPDATE adapters SET path = replace(path, ?, ?)", [str(byod_settings.home), str(home)])
        scorers = store.scorer_catalogue()
        email_id = store.split_ids("LingSpam", "test")["id"].iloc[0]
    head = scorers[scorers["readout"] == "classification-head"]["name"].iloc[0]
    with _serve(home, {"PHISHLENS_MODEL": byod_settings.model, "PHISHLENS_MAX_TOKENS": "96"}, "served_byod") as url:
        yield url, head, email_id


def test_explain_and_heads_on_an_imported_classification_head(served_byod, browser):
    from urllib.parse import quote

    url, head, email_id = served_byod
    page, events = _open(browser, f"{url}/explain?adapters={quote(head)}&email={email_id}&method=shap")
    _wait_for_text(page, "map by words", 180_000)
    page.wait_for_timeout(1500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-explain-imported-head.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.get_by_text("classification head's logit difference").count() >= 1
    assert page.locator("span[title^='+'], span[title^='-']").count() > 10
    _assert_no_script_ran_and_nothing_fetched(page, events, url)
    page.close()

    page, events = _open(browser, f"{url}/heads?adapter={quote(head)}&email={email_id}")
    _wait_for_text(page, "Top attended tokens", 180_000)
    page.get_by_role("tab", name="Logit lens").click()
    page.wait_for_timeout(2000)
    page.screenshot(path=str(ARTIFACTS / "page-heads-imported-head.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.get_by_text("head's difference direction").count() >= 1
    _assert_no_script_ran_and_nothing_fetched(page, events, url)
    page.close()
