"""Links shown to analysts name the host a browser would open, and nothing shown is a live link,
an invisible character or a bidi control. The table of tricky hrefs is checked against headless
Chromium's own URL parser."""

import json
import shutil

import pytest

from data.defang import INVISIBLE, defang, defang_url, link_host, reveal_invisible

ZWSP, SHY, RLO, LRI = "\u200b", "\u00ad", "\u202e", "\u2066"

# href → the host a browser opens (what Chromium's `new URL(href).hostname` says; '' where it throws)
TRICKY_HREFS = [
    "http://evil.test\\@paypal.com/",
    "http://paypal.com@evil.test/",
    "http://paypal.com:secret@evil.test:8080/login",
    "https://evil.test\\\\paypal.com/",
    "http:\\\\evil.test\\path",
    "http://p\u0430ypal.com/",  # Cyrillic а
    "http://\u03bfkta.com/",  # Greek ο
    "http://xn--pypal-4ve.com/",
    "http://pay\u200bpal.com/",
    "http://pay\u00adpal.com/",
    "http://a\uff0eb\uff0etest/",
    "http://a\u3002b.test/",
    "http://a%2eb.test/",
    "http://ex%41mple.test/",
    "http://EVIL.TEST./",
    "http://0x7f.0.0.1/",
    "http://2130706433/",
    "http://[::1]:8080/",
    "http://evil.test%00.paypal.com/",
    "http://a\u202eb.test/",
    "http://user@/",
    "javascript:alert(1)",
    "mailto:boss@paypal.com",
    "data:text/html,<script>alert(1)</script>",
    "HTTP://Bank.Test/Verify",
    "http://bank.test#@evil.test",
    "http://bank.test?@evil.test",
    "ftp://files.evil.test/x",
    "http://\u0440\u0430\u0443\u0440\u0430\u04cf.com/",  # all-Cyrillic "paypal"
]


@pytest.mark.parametrize("href,host", [
    ("http://evil.test\\@paypal.com/", "evil.test"),
    ("http://paypal.com@evil.test/", "evil.test"),
    ("http://pay\u200bpal.com/", "paypal.com"),
    ("http://a\uff0eb.test/", "a.b.test"),
    ("http://a%2eb.test/", "a.b.test"),
    ("www.bank.test/login", "www.bank.test"),
    ("javascript:alert(1)", ""),
])
def test_the_host_is_the_one_a_browser_opens(href, host):
    assert link_host(href).host == host


def test_look_alike_and_hidden_tricks_are_flagged():
    cyrillic = link_host("http://p\u0430ypal.com/")
    assert cyrillic.host == "xn--pypal-4ve.com" and cyrillic.unicode == "p\u0430ypal.com"
    assert any("mixed scripts" in w for w in cyrillic.warnings)
    assert not any("mixed" in w for w in link_host("http://xn--mnchen-3ya.test/").warnings)  # münchen: one script
    assert any("userinfo" in w for w in link_host("http://paypal.com@evil.test/").warnings)
    assert any("invisible" in w for w in link_host(f"http://pay{ZWSP}pal.com/").warnings)
    assert link_host(f"http://a{RLO}b.test/").host == ""


@pytest.mark.parametrize("href", TRICKY_HREFS)
def test_no_defanged_link_keeps_a_live_scheme_dot_or_invisible(href):
    shown = defang_url(href)
    assert not INVISIBLE.search(shown)
    assert "http:" not in shown.lower() and "https:" not in shown.lower()
    assert "javascript:" not in shown.lower() and "data:" not in shown.lower()
    host = link_host(href).host
    if host and not host.startswith("["):
        # none of the host's dots, in any of its spellings, is left live before the path
        authority = shown.split("//", 1)[-1].split("/", 1)[0].split("\\", 1)[0].split("?")[0].split("#")[0]
        for live in (".", "\uff0e", "\u3002", "%2e", "%2E"):
            assert live not in authority.replace("[.]", ""), (href, shown)


def test_free_text_is_defanged_and_bidi_revealed():
    text = f"Click http://bank.test/a or www.bank\uff0etest, ok{RLO}gnp.exe {LRI}x"
    shown = defang(text)
    assert "hxxp://bank[.]test/a" in shown and "www[.]bank[.]test" in shown
    assert "⟦U+202E⟧" in shown and "⟦U+2066⟧" in shown and not INVISIBLE.search(shown)
    assert reveal_invisible(f"a{SHY}b") == "a⟦U+00AD⟧b"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_hosts_equal_chromiums_own_url_parser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            theirs = page.evaluate("""hrefs => hrefs.map(h => {
                try { return new URL(h).hostname; } catch (e) { return ""; } })""", TRICKY_HREFS)
        finally:
            browser.close()
    ours = [link_host(href).host for href in TRICKY_HREFS]
    differ = {href: (mine, chromes) for href, mine, chromes in zip(TRICKY_HREFS, ours, theirs) if mine != chromes}
    assert not differ, json.dumps(differ, ensure_ascii=False, indent=1)
