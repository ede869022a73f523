"""Defanged URLs: shown to analysts as text that no browser or mail client turns into a link."""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def url_domain(url: str) -> str:
    """The host of a URL (lower-case, no port or credentials); '' when there is none."""
    if re.match(r"(?i)^[a-z][a-z0-9+.-]*:(?!//)", url):  # javascript:, mailto:, data: ... have no host
        return ""
    candidate = url if re.match(r"(?i)^[a-z][a-z0-9+.-]*://", url) else f"http://{url}"
    try:
        host = urlsplit(candidate).hostname or ""
    except ValueError:
        return ""
    return host.lower()


def defang(text: str) -> str:
    """hxxp(s)://example[.]com/path: scheme and every dot of the host neutralised."""
    text = re.sub(r"(?i)\bhttp(s?)://", r"hxxp\1://", text)
    text = re.sub(r"(?i)\b(ftp|javascript|vbscript|data|file|mailto):", r"\1[:]", text)

    def host_dots(match: re.Match) -> str:
        return match.group(1) + match.group(2).replace(".", "[.]")

    return re.sub(r"(://|^|\s|@)([\w.-]+\.[a-z]{2,})", host_dots, text, flags=re.IGNORECASE)
