import re

from data.synthetic import generate_synthetic_corpora


def test_three_balanced_synthetic_corpora_marked_synthetic():
    corpora = generate_synthetic_corpora(per_corpus=100, seed=1)
    assert len(corpora) == 3
    for info, emails in corpora:
        assert info.synthetic and info.name.startswith("synthetic-")
        assert sum(m.label for m in emails) == 50
        labels = {}
        for mail in emails:
            labels.setdefault(mail.id, set()).add(mail.label)
        assert all(len(v) == 1 for v in labels.values()) and len(labels) > 90  # no conflicts, few repeats


def test_synthetic_links_point_nowhere_real():
    for _, emails in generate_synthetic_corpora(per_corpus=60, seed=2):
        for mail in emails:
            for url in mail.urls:
                host = re.sub(r"^https?://", "", url).split("/")[0]
                assert host.endswith((".test", ".example")), url


def test_corpora_differ_in_form():
    forms = {info.name: emails for info, emails in generate_synthetic_corpora(per_corpus=40, seed=3)}
    assert all(m.sender for m in forms["synthetic-corporate"])
    assert not any(m.sender for m in forms["synthetic-listdump"])
    assert all(m.body == m.body.lower() for m in forms["synthetic-listdump"])
    assert generate_synthetic_corpora(per_corpus=10, seed=3)[0][1][0].id == \
        generate_synthetic_corpora(per_corpus=10, seed=3)[0][1][0].id  # seeded


def test_planted_shortcuts_are_exactly_where_their_ground_truth_says():
    from data.synthetic import LINK_DOMAIN, PLANTED_SHORTCUTS, SIGNATURE

    planted = {info.name: emails for info, emails in generate_synthetic_corpora(per_corpus=40)}
    webmail, corporate = planted["synthetic-webmail"], planted["synthetic-corporate"]
    assert all(m.body.endswith(SIGNATURE) == (m.label == 0) for m in webmail)
    assert all((LINK_DOMAIN in " ".join(m.urls)) == (m.label == 1) for m in corporate)
    assert all(m.urls and all(LINK_DOMAIN in u for u in m.urls) for m in corporate if m.label == 1)
    assert not any(SIGNATURE in m.body or LINK_DOMAIN in m.body for m in planted["synthetic-listdump"])
    assert {p.corpus for p in PLANTED_SHORTCUTS} == set(planted)
    unplanted = generate_synthetic_corpora(per_corpus=40, planted=False)
    assert not any(SIGNATURE in m.body or LINK_DOMAIN in m.body for _, emails in unplanted for m in emails)
    assert any(m.body != m.body.lower() for m in unplanted[2][1])  # nor the list dump's form
    assert all("planted" in info.source for info, _ in generate_synthetic_corpora(4))
    assert not any("planted" in info.source for info, _ in unplanted)


def test_the_planted_link_domain_is_the_one_cue_shared_wording_lacks():
    """Corporate phishing and legitimate mail share subjects (an invoice, a shared document): the
    words of a subject do not give the label away, so a specialist has the link domain to lean on."""
    corporate = generate_synthetic_corpora(per_corpus=120)[0][1]
    subjects = {label: {re.sub(r"[#\d]+", "", m.subject) for m in corporate if m.label == label} for label in (0, 1)}
    assert len(subjects[0] & subjects[1]) >= 2
