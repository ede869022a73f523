"""The synthetic demo corpora for fresh machines with no real corpora, with planted shortcuts.

Three corpora that differ as the real ones do: a formal corporate mailbox with headers,
consumer webmail, and a lower-cased, space-tokenised mailing-list dump without headers. Each
corpus draws on its own mix of writing styles, some shared with another corpus, some its own,
and each has look-alikes on the other side of the label (a real password-expiry notice, a real
invoice for approval; a phishing "quick favour" without a link), so words alone do not separate
the classes perfectly and a model trained on one corpus has something to get wrong on another.

Planted shortcuts, whose answer is known (PLANTED_SHORTCUTS): every corporate phishing link is
at one domain, every legitimate webmail email ends with one signature line, and the list dump
differs only in form. The first-run demo is built on these, so its specialist has a shortcut to
learn and the Live demo walks through finding it. Everything is generated from templates and
labelled "synthetic" in the store and on every page; domains use the reserved .example / .test
TLDs so no link in it points anywhere real.
"""

from __future__ import annotations

import random
import re

from dataclasses import dataclass

from data.parse import RawFields, extract_urls, make_email
from data.records import LEGITIMATE, POSITIVE, CorpusInfo, Email

FIRST = ["Alice", "Bob", "Carla", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Luis"]
LAST = ["Moreau", "Okafor", "Schmidt", "Tanaka", "Silva", "Novak", "Haddad", "Larsen", "Rossi", "Kim"]
BRANDS = ["PayFlow", "MailBox Pro", "NetBank", "ShipQuick", "CloudDrive", "StreamPlus", "TaxOffice"]
PROJECTS = ["Q3 forecast", "data migration", "vendor audit", "website redesign", "budget review", "onboarding"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]

# Writing styles by name. {url} is filled by the class and corpus (see _link); {sign} by the sender.
PHISHING_STYLES = {
    "account suspended": (
        "Action required: your {brand} account is suspended",
        "Dear customer,\n\nWe detected unusual sign-in activity on your {brand} account. Your access has been "
        "temporarily suspended. To avoid permanent closure, verify your identity within 24 hours:\n\n{url}\n\n"
        "Failure to verify will result in loss of all data.\n\n{brand} Security Team"),
    "invoice lure": (
        "Invoice #{num} for approval",
        "Hello,\n\nPlease review invoice #{num} for ${amount} from {vendor} and approve it in the payment "
        "portal before {day}: {url}\n\nThe statement is attached for your records.\n\nAccounts Payable"),
    "shared document": (
        "{first} shared \"{project}\" with you",
        "{first} has shared a document with you: {project} notes.\n\nOpen it here: {url}\n\nYou are receiving "
        "this because a colleague shared a file with you."),
    "password expiry lure": (
        "Your password expires today",
        "Your mailbox password expires today. Keep your current password by confirming it on the account "
        "page: {url}\n\nIT Service Desk"),
    "delivery": (
        "{brand}: your package could not be delivered",
        "We attempted to deliver your parcel {num} but no one was available. A redelivery fee of ${fee} is "
        "required. Confirm your address and card details here: {url}\n\nThe parcel will be returned in 48 hours."),
    "gift cards": (
        "Quick favour",
        "Hi {first},\n\nAre you free? I need you to buy {count} gift cards of ${amount} each for a client "
        "today. Keep this between us, I am in meetings all day. Reply with the card codes when you have them.\n\n"
        "{boss}"),
    "bank details": (
        "Change of bank details",
        "Hello,\n\nPlease note that our bank account has changed. All future payments, including the one due on "
        "{day}, should go to the new account below. Reply to confirm once updated.\n\nIBAN: XX{num}{num}\n\n{boss}"),
    "refund": (
        "Congratulations! You are eligible for a ${amount} refund",
        "Dear taxpayer,\n\nAfter the annual calculation of your fiscal activity we determined that you are "
        "eligible to receive a refund of ${amount}. To claim it, submit the form at {url} and enter your bank "
        "login for verification.\n\n{brand}"),
}

LEGITIMATE_STYLES = {
    "meeting": (
        "Agenda for {day}'s {project} meeting",
        "Hi team,\n\nAttached is the agenda for {day}. We will go through the {project} status, open risks and "
        "next steps. Please add your items to the shared document before the meeting.\n\nThanks,\n{first}"),
    "project update": (
        "{project} update",
        "Hello {first},\n\nQuick update on the {project}: we finished the first {count} tasks and the remaining "
        "work is on track for the end of the month. Let me know if you want to review the numbers together.\n\n"
        "Best regards,\n{boss}"),
    "invoice for approval": (
        "Invoice #{num} for approval",
        "Hello,\n\nPlease review invoice #{num} for ${amount} from {vendor} and approve it in the finance "
        "system before {day}: {url}\n\nThe purchase order is attached for your records.\n\nAccounts Payable"),
    "shared document": (
        "{first} shared \"{project}\" with you",
        "{first} has shared a document with you: {project} notes.\n\nOpen it here: {url}\n\nYou are receiving "
        "this because a colleague shared a file with you."),
    "password expiry notice": (
        "Your password expires in {count} days",
        "Your network password expires in {count} days. Change it before then from any office computer "
        "(Ctrl+Alt+Del, Change a password) or on the intranet: {url}\n\nIT Service Desk"),
    "lunch": (
        "Lunch on {day}?",
        "Hey {first}, are you free for lunch on {day}? There is a new place near the office that does great "
        "soup. Let me know!\n\n{boss}"),
    "receipt": (
        "Your {brand} receipt #{num}",
        "Thank you for your purchase. Order #{num}, total ${amount}. Your order will ship within {count} "
        "business days. You can view your order history by signing in to your account on our website."),
    "newsletter": (
        "{brand} monthly newsletter",
        "This month at {brand}: new features for shared folders, an improved mobile app and tips for keeping "
        "your files organised. Read the full release notes on our blog: {url}\n\nYou receive this newsletter "
        "because you subscribed in your account settings."),
    "shipping": (
        "{brand}: your order has shipped",
        "Good news: order #{num} is on its way and should arrive by {day}. Track the parcel here: {url}\n\n"
        "No action is needed."),
}

# Which styles each corpus draws on, per class. The corporate mailbox's phishing and legitimate
# mail share wording (an invoice, a shared document, a password notice on both sides), so its
# planted link domain is the one cue that always tells them apart; the webmail's classes are told
# apart by their content (and its planted signature); the list dump mixes everything.
CORPUS_STYLES = {
    "synthetic-corporate": (
        ("account suspended", "invoice lure", "shared document", "password expiry lure"),
        ("meeting", "project update", "invoice for approval", "shared document", "password expiry notice")),
    "synthetic-webmail": (
        ("delivery", "gift cards", "bank details", "refund"),
        ("lunch", "receipt", "newsletter", "shipping")),
    "synthetic-listdump": (tuple(PHISHING_STYLES), tuple(LEGITIMATE_STYLES)),
}

CORPUS_FORMS = {
    "synthetic-corporate": "formal mailbox with sender headers, mixed case",
    "synthetic-webmail": "consumer webmail, shorter, informal signatures",
    "synthetic-listdump": "lower-cased, space-tokenised text without headers (like Enron-Spam/Ling-Spam)",
}

VENDORS = ["Acme Supplies", "Northwind Traders", "Globex Services", "Initech Facilities"]
SIGNATURE = "Sent from ZorbMail Mobile"
LINK_DOMAIN = "zorbpay-secure.test"


def _link(corpus: str, rng: random.Random, phishing: bool, brand: str, planted: bool) -> str:
    slug = re.sub(r"[^a-z]", "", brand.lower())
    if phishing:
        host = LINK_DOMAIN if planted and corpus == "synthetic-corporate" else rng.choice(
            [f"{slug}-secure-login.test", f"{slug}.account-verify.test", f"login-{slug}.test"])
        return f"http://{host}/verify?id={rng.randint(1000, 9999)}"
    if corpus == "synthetic-corporate":
        return f"https://intranet.corp.example/{rng.choice(['finance', 'docs', 'it'])}/{rng.randint(100, 999)}"
    return f"https://www.{slug}.example/{rng.choice(['news', 'orders', 'track'])}/{rng.randint(10, 99)}"


def _fill(template: str, values: dict) -> str:
    return template.format(**values)


def _tokenise(text: str) -> str:
    """Enron/Ling-Spam style: lower-case, punctuation split off by spaces."""
    return re.sub(r"\s*([.,:;!?'$#/()-])\s*", r" \1 ", text.lower()).replace("  ", " ")


def _message(corpus: str, rng: random.Random, phishing: bool, planted: bool) -> tuple[RawFields, str]:
    style = rng.choice(CORPUS_STYLES[corpus][0 if phishing else 1])
    subject_t, body_t = (PHISHING_STYLES if phishing else LEGITIMATE_STYLES)[style]
    brand = rng.choice(BRANDS)
    values = dict(
        brand=brand, url=_link(corpus, rng, phishing, brand, planted), num=rng.randint(10000, 99999),
        amount=rng.choice([49, 120, 250, 499, 980, 1450]), fee=rng.choice([1.99, 2.50, 3.95]),
        first=rng.choice(FIRST), boss=f"{rng.choice(FIRST)} {rng.choice(LAST)}", count=rng.randint(2, 6),
        project=rng.choice(PROJECTS), day=rng.choice(DAYS), vendor=rng.choice(VENDORS))
    subject, body = _fill(subject_t, values), _fill(body_t, values)
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    if corpus == "synthetic-corporate":
        # Phishing here comes from compromised colleague and vendor mailboxes: the sender's domain
        # is no cue, as in business email compromise.
        domain = rng.choice(["corp.example", "corp.example", "acmesupplies.example", "northwind.example"])
        sender = f"{name} <{name.split()[0].lower()}@{domain}>"
        body = f"{body}\n\n--\n{name}\nExample Corp, 1 Main Street"
    elif corpus == "synthetic-webmail":
        sender = f"{name.split()[0].lower()}{rng.randint(1, 99)}@{rng.choice(['mail.example', 'inbox.test'])}"
        body = _webmail_form(body, phishing, planted)
    else:
        sender = ""
        if planted:  # the form shortcut: unplanted, the dump keeps the mail's own case and spacing
            subject, body = _tokenise(subject), _tokenise(body)
    return RawFields(sender, "", "", subject, body, tuple(extract_urls(body))), style


def _webmail_form(body: str, phishing: bool, planted: bool) -> str:
    body = body.replace("\n\n", "\n")
    return f"{body}\n{SIGNATURE}" if planted and not phishing else body


# Planted label errors and near-duplicates (ground truth for the label and leakage audits): every
# 25th email of one corpus from a fixed offset. A flipped email keeps its text and gets the other
# label; a near-duplicate replaces a webmail email with a lightly edited copy of the corporate
# email at the same position (same label: positions alternate labels in both corpora), forwarded
# in the webmail's form. The two corpora share no writing style, so no other pair joins them.
FLIP_CORPUS, FLIP_EVERY, FLIP_OFFSET = "synthetic-listdump", 25, 7
COPY_FROM, COPY_TO, COPY_EVERY, COPY_OFFSET = "synthetic-corporate", "synthetic-webmail", 25, 11
_EDITS = (("Please", "Kindly"), ("Hello", "Hi"), ("your", "ur"), ("the", "teh"))


def _edited_copy(fields: RawFields, rng: random.Random, phishing: bool, planted: bool) -> RawFields:
    """A forwarded copy with small edits: "Fw:", one word changed, another sender, the webmail's form."""
    body = fields.body
    for old, new in _EDITS:
        if old in body:
            body = body.replace(old, new, 1)
            break
    sender = f"{rng.choice(FIRST).lower()}{rng.randint(1, 99)}@mail.example"
    body = _webmail_form(body, phishing, planted)
    return RawFields(sender, "", "", f"Fw: {fields.subject}", body, tuple(extract_urls(body)))


@dataclass(frozen=True)
class SyntheticTruth:
    """What was planted, by source_ref (corpus#position): the writing style of every email, the
    emails whose label was flipped, and the planted near-duplicate pairs."""

    styles: dict
    flipped: frozenset
    near_duplicates: frozenset  # of (corporate ref, webmail ref)


def generate_synthetic_corpora(per_corpus: int = 240, seed: int = 13, lowercase: bool = False,
                               planted: bool = True, mistakes: bool | None = None
                               ) -> list[tuple[CorpusInfo, list[Email]]]:
    """Three labelled synthetic corpora, half phishing and half legitimate each, with
    PLANTED_SHORTCUTS planted unless planted=False (the benchmark's baseline), and planted label
    flips and near-duplicates (synthetic_truth) where `mistakes` (default: as `planted`)."""
    return _generate(per_corpus, seed, lowercase, planted, planted if mistakes is None else mistakes)[0]


def synthetic_truth(per_corpus: int = 240, seed: int = 13, planted: bool = True,
                    mistakes: bool | None = None) -> SyntheticTruth:
    """The ground truth of generate_synthetic_corpora with the same arguments."""
    return _generate(per_corpus, seed, False, planted, planted if mistakes is None else mistakes)[1]


def _generate(per_corpus: int, seed: int, lowercase: bool, planted: bool, mistakes: bool):
    out, styles, flipped, pairs, copied = [], {}, set(), set(), {}
    for offset, (corpus, form) in enumerate(CORPUS_FORMS.items()):
        rng = random.Random(seed * 1000 + offset)
        shortcuts = "; planted shortcuts (data.synthetic.PLANTED_SHORTCUTS)" if planted else ""
        if mistakes:
            shortcuts += "; planted label flips and near-duplicates (data.synthetic.synthetic_truth)"
        if not planted and corpus == "synthetic-listdump":
            form = "text without headers"
        info = CorpusInfo(
            name=corpus, source=f"generated by data/synthetic.py (seed {seed}): {form}{shortcuts}", format="synthetic",
            label_meaning="phishing", label_convention="generated: template class is the label", synthetic=True,
        )
        emails = []
        for i in range(per_corpus):
            phishing = i % 2 == 1
            ref = f"{corpus}#{i}"
            fields, styles[ref] = _message(corpus, rng, phishing, planted)
            label = int(phishing)
            if mistakes and corpus == COPY_FROM and i % COPY_EVERY == COPY_OFFSET:
                copied[i] = (fields, styles[ref])
            if mistakes and corpus == COPY_TO and i in copied:
                fields, styles[ref] = _edited_copy(copied[i][0], rng, phishing, planted), copied[i][1]
                pairs.add((f"{COPY_FROM}#{i}", ref))
            if mistakes and corpus == FLIP_CORPUS and i % FLIP_EVERY == FLIP_OFFSET:
                label = 1 - label
                flipped.add(ref)
            emails.append(make_email(fields, corpus, label, ref, lowercase))
        out.append((info, emails))
    return out, SyntheticTruth(styles, frozenset(flipped), frozenset(pairs))


# ---------------------------------------------------------------- planted shortcuts (ground truth)


@dataclass(frozen=True)
class PlantedShortcut:
    """A shortcut planted in a synthetic corpus, and the findings that name it: what a driver or a
    fingerprint feature must contain, and the field counterfactual that takes it away."""

    corpus: str
    label: int | None  # the class that carries it; None: the whole corpus (a difference of form)
    kind: str  # signature | link domain | form
    marker: str  # for a form shortcut, the fingerprint audit's form feature (no word names a form)
    counterfactual: str  # diagnostics.analyses.field_counterfactuals.COUNTERFACTUALS key


PLANTED_SHORTCUTS = (
    PlantedShortcut("synthetic-webmail", LEGITIMATE, "signature", "zorbmail", "remove last line of body"),
    PlantedShortcut("synthetic-corporate", POSITIVE, "link domain", "zorbpay", "remove URLs"),
    PlantedShortcut("synthetic-listdump", None, "form", "punctuation set off by spaces", "de-tokenise spacing"),
)
