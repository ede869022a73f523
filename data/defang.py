"""Links shown to analysts: the host a browser would open, and text no browser or mail client
turns into a link.

Hosts are read the way browsers read them: the WHATWG URL standard (ada-url, the parser Node.js
uses), so backslashes, userinfo ("http://evil.test\\@paypal.com/" opens evil.test), percent-encoded
host characters, full-width dots and IDNA mapping (which drops zero-width and soft-hyphen
characters) give the host Chromium's `new URL(href).hostname` gives (tested against it).
Internationalised hosts are shown in punycode, the form the browser connects to, and flagged,
with their Unicode form, when a label mixes scripts (a Cyrillic "а" in "pаypal"). Invisible and
bidi control characters are never passed through: they are shown as ⟦U+XXXX⟧, so they can
neither hide in nor reorder what is shown.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ada_url import URL, idna_to_unicode

# Characters that render as nothing or reorder the text around them: zero-width, soft hyphen,
# word joiner, byte-order mark, bidi embeddings, overrides, isolates and marks.
INVISIBLE = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# What IDNA maps to "." in a host: the full stop, the ideographic and full-width ones, and "%2e".
_DOT_LIKE = re.compile(r"[.\u3002\uff0e\uff61]|%2e", re.IGNORECASE)
_SCHEME = re.compile(r"^\s*([a-z][a-z0-9+.-]*):", re.IGNORECASE)


def reveal_invisible(text: str) -> str:
    """Every invisible or bidi control character shown as ⟦U+XXXX⟧."""
    return INVISIBLE.sub(lambda m: f"⟦U+{ord(m.group()):04X}⟧", text)


@dataclass(frozen=True)
class LinkHost:
    """The host a browser opens for a link, and what about it should make an analyst look twice."""

    host: str  # ASCII (punycode) as the browser connects to it; '' when the link has none
    unicode: str  # the same host in Unicode ('' when it is plain ASCII)
    warnings: tuple[str, ...] = ()


def _scripts(label: str) -> set[str]:
    """The scripts of a label's letters, by their Unicode names (LATIN, CYRILLIC, GREEK, ...)."""
    return {unicodedata.name(c, "UNKNOWN").split()[0] for c in label if c.isalpha()}


def link_host(url: str) -> LinkHost:
    """The host a browser would open for `url` (http:// assumed for a link without a scheme, as
    mail clients link www.example.com), with warnings for look-alike and hidden tricks."""
    warnings = []
    if INVISIBLE.search(url):
        warnings.append("invisible or bidi characters in the link")
    candidate = url.strip()
    if not _SCHEME.match(candidate):
        candidate = "http://" + candidate.lstrip("/\\")
    try:
        parsed = URL(candidate)
    except ValueError:
        return LinkHost("", "", (*warnings, "not a link a browser would open"))
    host = parsed.hostname
    if not host:
        return LinkHost("", "", tuple(warnings))
    if parsed.username or parsed.password:
        warnings.append("userinfo before the host: what precedes '@' is not where it goes")
    shown = ""
    if any(label.startswith("xn--") for label in host.split(".")):
        shown = idna_to_unicode(host)
        mixed = [label for label in shown.split(".") if len(_scripts(label)) > 1]
        warnings.append(f"internationalised host, shown as {reveal_invisible(shown)}"
                        + (" (mixed scripts: a look-alike?)" if mixed else ""))
    return LinkHost(host, shown, tuple(warnings))


def defang_url(url: str) -> str:
    """hxxp(s)://example[.]com/path for one link: the scheme neutralised and every dot-like character
    of its authority (userinfo and host, as a browser delimits them) bracketed; invisibles revealed."""
    text = reveal_invisible(url)
    scheme = _SCHEME.match(text)
    start = scheme.end() if scheme else 0
    rest = text[start:]
    lead = len(rest) - len(rest.lstrip("/\\"))
    authority_end = next((i for i, c in enumerate(rest) if i >= lead and c in "/\\?#"), len(rest))
    authority = _DOT_LIKE.sub("[.]", rest[lead:authority_end])
    prefix = _defang_scheme(text[:start]) if scheme else ""
    return prefix + rest[:lead] + authority + rest[authority_end:]


def _defang_scheme(scheme: str) -> str:
    name = scheme.strip().rstrip(":").lower()
    if name in ("http", "https"):
        return scheme.lower().replace("http", "hxxp", 1)
    return f"{scheme.rstrip(':')}[:]"


def defang(text: str) -> str:
    """Free text with its links neutralised: http(s) schemes as hxxp(s), other link schemes as x[:],
    every dot of a host-like word bracketed, dot-likes too, and invisibles revealed."""
    text = reveal_invisible(text)
    text = re.sub(r"(?i)\bhttp(s?):", r"hxxp\1:", text)
    text = re.sub(r"(?i)\b(ftp|javascript|vbscript|data|file|mailto):", r"\1[:]", text)

    def host_dots(match: re.Match) -> str:
        return match.group(1) + _DOT_LIKE.sub("[.]", match.group(2))

    return re.sub(r"(://|:\\\\|^|\s|@|\\)([\w\u3002\uff0e\uff61%-]+(?:[.\u3002\uff0e\uff61]|%2e)[\w.\u3002\uff0e\uff61%-]*)",
                  host_dots, text, flags=re.IGNORECASE)
