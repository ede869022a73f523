"""Text normalisation applied identically to every corpus, and the content hash.

The corpora differ in form (tabs and non-breaking spaces in Nazario, space-tokenised
lower-case text in Enron-Spam and Ling-Spam, raw MIME in SpamAssassin). A classifier
can learn that form instead of the content, so every corpus goes through the same
normalisation and the one used is recorded with each email.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

WHITESPACE_VERSION = "ws1"

# Every Unicode space separator (NBSP, thin space, ...) plus tab, form feed, vertical tab.
_INLINE_SPACE = re.compile(r"[^\S\n]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalisation_name(lowercase: bool) -> str:
    """The label stored with each email, e.g. 'ws1' or 'ws1+lower'."""
    return WHITESPACE_VERSION + ("+lower" if lowercase else "")


def normalise_text(text: str, lowercase: bool = False) -> str:
    """Collapse whitespace the same way for all corpora; optionally lower-case."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub(" ", text)
    lines = (_INLINE_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    text = _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()
    return text.lower() if lowercase else text


def content_hash(subject: str, body: str) -> str:
    """Id of an email: hash of its normalised subject and body (the content, not the envelope)."""
    digest = hashlib.sha256(f"{subject}\n\x1f\n{body}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:24]
