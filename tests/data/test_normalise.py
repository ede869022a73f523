from data.normalise import content_hash, normalisation_name, normalise_text


def test_whitespace_collapses_tabs_nbsp_and_blank_runs():
    raw = "Dear\tclient,\xa0\xa0 please\u2009verify \r\n\r\n\r\n\r\nThanks  \t"
    assert normalise_text(raw) == "Dear client, please verify\n\nThanks"


def test_lowercase_is_an_option_and_recorded():
    assert normalise_text("Verify YOUR Account") == "Verify YOUR Account"
    assert normalise_text("Verify YOUR Account", lowercase=True) == "verify your account"
    assert normalisation_name(False) == "ws1"
    assert normalisation_name(True) == "ws1+lower"


def test_control_characters_removed():
    assert normalise_text("a\x00b\x07c") == "a b c"


def test_hash_equal_for_whitespace_variants_and_distinct_otherwise():
    a = content_hash(normalise_text("Hi"), normalise_text("click\t\there  now"))
    b = content_hash(normalise_text("Hi "), normalise_text("click here now"))
    c = content_hash(normalise_text("Hi"), normalise_text("click there now"))
    assert a == b
    assert a != c
    # subject/body boundary matters: moving text between them changes the id
    assert content_hash("ab", "c") != content_hash("a", "bc")
