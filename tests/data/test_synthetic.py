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
