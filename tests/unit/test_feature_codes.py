"""Feature codes: the grammar, the configured codes and their checks."""
from dataclasses import replace

import pytest

from kemi.config import Settings
from kemi.feature_codes import Feature, FeatureError, codes_from, parse

CODES = codes_from(Settings())

PARSES = [
    ("*8", Feature("pickup")),
    ("*8201", Feature("pickup", "201")),
    ("%2A8201", Feature("pickup", "201")),
    ("*61", Feature("login")),
    ("*616000", Feature("login", "6000")),
    ("*62", Feature("logout")),
    ("*626000", Feature("logout", "6000")),
    ("*63", Feature("pause")),
    ("*6312", Feature("pause", "12")),
    ("*64", Feature("unpause")),
    ("*65", Feature("dnd")),
    ("201", None),                 # a number: not a feature
    ("4#201", None),               # listen-in stays a dial string
    ("", None),
    ("*9", None),                  # no such code: routed as a dial string (484 there)
    ("*6", None),
]


@pytest.mark.parametrize("raw,expected", PARSES)
def test_parse(raw, expected):
    assert parse(raw, CODES) == expected


ERRORS = [("*64123", "takes no number"), ("*65x", "takes no number"), ("*8abc", "digits only"),
          ("*61" + "1" * 33, "digits only"), ("*63 1", "digits only")]


@pytest.mark.parametrize("raw,words", ERRORS)
def test_bad_arguments_get_484(raw, words):
    with pytest.raises(FeatureError) as err:
        parse(raw, CODES)
    assert err.value.status == 484 and words in err.value.reason


@pytest.mark.parametrize("change,words", [
    ({"code_pickup": "*6"}, "prefix"),          # *6 would shadow *61..*65
    ({"code_dnd": "*61"}, "differ"),
    ({"code_login": "61"}, "must be"),
    ({"code_pause": "*6a"}, "must be"),
])
def test_bad_configuration_is_refused_at_start(change, words):
    with pytest.raises(ValueError, match=words):
        codes_from(replace(Settings(), **change))
