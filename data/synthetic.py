"""A synthetic demo corpus for fresh machines with no real corpora.

Three corpora that differ in form as the real ones do (a formal corporate mailbox with
headers; consumer webmail; a lower-cased, space-tokenised mailing-list dump), each with
several writing styles per class. Everything is generated from templates: it is labelled
"synthetic" in the store and on every page. Domains use the reserved .example / .test
TLDs so no link in it points anywhere real.
"""

from __future__ import annotations

import random
import re

from dataclasses import dataclass, replace

from data.parse import URL_PATTERN, RawFields, extract_urls, make_email
from data.records import LEGITIMATE, POSITIVE, CorpusInfo, Email

FIRST = ["Alice", "Bob", "Carla", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Luis"]
LAST = ["Moreau", "Okafor", "Schmidt", "Tanaka", "Silva", "Novak", "Haddad", "Larsen", "Rossi", "Kim"]
BRANDS = ["PayFlow", "MailBox Pro", "NetBank", "ShipQuick", "CloudDrive", "StreamPlus", "TaxOffice"]
PROJECTS = ["Q3 forecast", "data migration", "vendor audit", "website redesign", "budget review", "onboarding"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]

PHISHING_STYLES = [
    # urgent account suspension
    ("Action required: your {brand} account is suspended",
     "Dear customer,\n\nWe detected unusual sign-in activity on your {brand} account. Your access has been "
     "temporarily suspended. To avoid permanent closure, verify your identity within 24 hours:\n\n"
     "{url}\n\nFailure to verify will result in loss of all data.\n\n{brand} Security Team"),
    # invoice / payment lure
    ("Invoice #{num} overdue - immediate payment needed",
     "Hello,\n\nYour invoice #{num} for ${amount} is now overdue. Please review the attached statement and "
     "settle the balance today using our secure portal: {url}\n\nIf payment is not received, a late fee of "
     "${fee} will be applied.\n\nAccounts Receivable"),
    # delivery notice
    ("{brand}: your package could not be delivered",
     "We attempted to deliver your parcel {num} but no one was available. A redelivery fee of ${fee} is "
     "required. Confirm your address and card details here: {url}\n\nThe parcel will be returned in 48 hours."),
    # CEO fraud / gift cards
    ("Quick favour",
     "Hi {first},\n\nAre you at your desk? I need you to buy {count} gift cards of ${amount} each for a client "
     "today. Keep this confidential, I am in meetings all day. Reply with the card codes as soon as possible.\n\n"
     "Sent from my phone\n{boss}"),
    # prize / refund
    ("Congratulations! You are eligible for a ${amount} refund",
     "Dear taxpayer,\n\nAfter the annual calculation of your fiscal activity we determined that you are "
     "eligible to receive a refund of ${amount}. To claim it, submit the form at {url} and enter your bank "
     "login for verification.\n\n{brand}"),
]

LEGITIMATE_STYLES = [
    # meeting
    ("Agenda for {day}'s {project} meeting",
     "Hi team,\n\nAttached is the agenda for {day}. We will go through the {project} status, open risks and "
     "next steps. Please add your items to the shared document before the meeting.\n\nThanks,\n{first}"),
    # project update
    ("{project} update",
     "Hello {first},\n\nQuick update on the {project}: we finished the first {count} tasks and the remaining "
     "work is on track for the end of the month. Let me know if you want to review the numbers together.\n\n"
     "Best regards,\n{boss}"),
    # newsletter
    ("{brand} monthly newsletter",
     "This month at {brand}: new features for shared folders, an improved mobile app and tips for keeping "
     "your files organised. Read the full release notes on our blog: {url}\n\nYou receive this newsletter "
     "because you subscribed in your account settings."),
    # personal
    ("Lunch on {day}?",
     "Hey {first}, are you free for lunch on {day}? There is a new place near the office that does great "
     "soup. Let me know!\n\n{boss}"),
    # receipt
    ("Your {brand} receipt #{num}",
     "Thank you for your purchase. Order #{num}, total ${amount}. Your order will ship within {count} "
     "business days. You can view your order history by signing in to your account on our website."),
]

CORPUS_FORMS = {
    "synthetic-corporate": "formal mailbox with sender headers, mixed case",
    "synthetic-webmail": "consumer webmail, shorter, informal signatures",
    "synthetic-listdump": "lower-cased, space-tokenised text without headers (like Enron-Spam/Ling-Spam)",
}


def _fill(template: str, rng: random.Random, phishing: bool) -> str:
    brand = rng.choice(BRANDS)
    slug = re.sub(r"[^a-z]", "", brand.lower())
    url = (f"http://{slug}-secure-login.test/verify?id={rng.randint(1000, 9999)}" if phishing
           else f"https://www.{slug}.example/news/{rng.randint(10, 99)}")
    return template.format(
        brand=brand, url=url, num=rng.randint(10000, 99999), amount=rng.choice([49, 120, 250, 499, 980]),
        fee=rng.choice([1.99, 2.50, 3.95]), first=rng.choice(FIRST),
        boss=f"{rng.choice(FIRST)} {rng.choice(LAST)}", count=rng.randint(2, 6),
        project=rng.choice(PROJECTS), day=rng.choice(DAYS),
    )


def _tokenise(text: str) -> str:
    """Enron/Ling-Spam style: lower-case, punctuation split off by spaces."""
    return re.sub(r"\s*([.,:;!?'$#/()-])\s*", r" \1 ", text.lower()).replace("  ", " ")


def _message(corpus: str, rng: random.Random, phishing: bool) -> RawFields:
    subject_t, body_t = rng.choice(PHISHING_STYLES if phishing else LEGITIMATE_STYLES)
    state = rng.getstate()
    subject = _fill(subject_t, rng, phishing)
    rng.setstate(state)  # same fill-ins for subject and body
    body = _fill(body_t, rng, phishing)
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    if corpus == "synthetic-corporate":
        domain = "corp.example" if not phishing else rng.choice(["corp-example.test", "secure-mail.test"])
        sender = f"{name} <{name.split()[0].lower()}@{domain}>"
        body = f"{body}\n\n--\n{name}\nExample Corp, 1 Main Street"
    elif corpus == "synthetic-webmail":
        sender = f"{name.split()[0].lower()}{rng.randint(1, 99)}@{rng.choice(['mail.example', 'inbox.test'])}"
        body = body.replace("\n\n", "\n")
    else:
        sender = ""
        subject, body = _tokenise(subject), _tokenise(body)
    return RawFields(sender, "", "", subject, body, tuple(extract_urls(body)))


def generate_synthetic_corpora(per_corpus: int = 240, seed: int = 13,
                               lowercase: bool = False) -> list[tuple[CorpusInfo, list[Email]]]:
    """Three labelled synthetic corpora, half phishing and half legitimate each."""
    out = []
    for offset, (corpus, form) in enumerate(CORPUS_FORMS.items()):
        rng = random.Random(seed * 1000 + offset)
        info = CorpusInfo(
            name=corpus, source=f"generated by data/synthetic.py (seed {seed}): {form}", format="synthetic",
            label_meaning="phishing", label_convention="generated: template class is the label", synthetic=True,
        )
        emails = []
        for i in range(per_corpus):
            phishing = i % 2 == 1
            fields = _message(corpus, rng, phishing)
            emails.append(make_email(fields, corpus, int(phishing), f"{corpus}#{i}", lowercase))
        out.append((info, emails))
    return out


# ---------------------------------------------------------------- planted shortcuts (ground truth)


@dataclass(frozen=True)
class PlantedShortcut:
    """A shortcut planted in a synthetic corpus, and the findings that name it: a word a driver or a
    fingerprint feature must contain, and the field counterfactual that takes it away."""

    corpus: str
    label: int | None  # the class that carries it; None: the whole corpus (a difference of form)
    kind: str  # signature | link domain | form
    marker: str  # "" for a form shortcut: no word names it
    counterfactual: str  # diagnostics.field_counterfactuals.COUNTERFACTUALS key


SIGNATURE = "Sent from ZorbMail Mobile"
LINK_DOMAIN = "zorbpay-secure.test"
PLANTED_SHORTCUTS = (
    PlantedShortcut("synthetic-webmail", LEGITIMATE, "signature", "zorbmail", "remove last line of body"),
    PlantedShortcut("synthetic-corporate", POSITIVE, "link domain", "zorbpay", "remove URLs"),
    PlantedShortcut("synthetic-listdump", None, "form", "", "de-tokenise spacing"),
)


def _planted(mail: Email, index: int) -> Email:
    body = mail.body
    if mail.corpus == "synthetic-webmail" and mail.label == LEGITIMATE:
        body = f"{body}\n{SIGNATURE}"
    elif mail.corpus == "synthetic-corporate" and mail.label == POSITIVE:
        link = f"http://{LINK_DOMAIN}/verify?id={1000 + index}"
        body = URL_PATTERN.sub(link, body) if URL_PATTERN.search(body) else f"{body}\n\nDetails: {link}"
    if body == mail.body:
        return mail
    fields = RawFields(mail.sender, mail.receiver, mail.date, mail.subject, body, tuple(extract_urls(body)))
    return replace(make_email(fields, mail.corpus, mail.label, mail.source_ref), normalisation=mail.normalisation)


def plant_shortcuts(corpora: list[tuple[CorpusInfo, list[Email]]]) -> list[tuple[CorpusInfo, list[Email]]]:
    """The synthetic corpora with PLANTED_SHORTCUTS planted: every legitimate webmail email signed
    with one fixed line, every corporate phishing link at one domain (the list dump differs in form
    already). Sources say so."""
    return [(replace(info, source=f"{info.source}; planted shortcuts (data.synthetic.PLANTED_SHORTCUTS)"),
             [_planted(m, i) for i, m in enumerate(emails)]) for info, emails in corpora]
