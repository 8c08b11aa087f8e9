"""Targets and what they name: globs, exact names, ad hoc filters (regexes on RE2), search."""
from __future__ import annotations

import fnmatch
import re

import pytest
from hypothesis import given, settings, strategies as st

from datasock.http_bridge import patterns, targets
from datasock.http_bridge.errors import RequestError
from datasock.http_bridge.parsing import parse_target
from datasock.http_bridge.targets import Filter

CATALOG = {
    "sim": {"thermometer_1k": {"units": "K", "type": "number"}, "thermometer_4k": {"units": "K", "type": "number"},
            "pressure_main": {"units": "mbar", "type": "number"}, "psu_mode": {"units": "", "type": "string"}},
    "host": {"cpu_load": {"units": "", "type": "number"}},
}


def test_expand_globs_exact_names_and_filters():
    t = parse_target({"target": "sim::thermometer_*"}, 0)
    assert targets.expand(t, CATALOG) == [("sim", "thermometer_1k"), ("sim", "thermometer_4k")]
    t = parse_target({"target": "*::*"}, 0)
    assert targets.expand(t, CATALOG, [Filter("units", "=", "K")]) == [("sim", "thermometer_1k"),
                                                                         ("sim", "thermometer_4k")]
    assert targets.expand(t, CATALOG, [Filter("node", "!=", "sim")]) == [("host", "cpu_load")]
    assert targets.expand(t, CATALOG, [Filter("field", "=~", "^p")]) == [("sim", "pressure_main"),
                                                                           ("sim", "psu_mode")]
    assert targets.expand(t, CATALOG, [Filter("type", "!~", "number")]) == [("sim", "psu_mode")]
    # an exact name the catalog does not know still goes to its node
    exact = parse_target({"target": "other::x"}, 0)
    assert targets.expand(exact, CATALOG) == [("other", "x")]


def test_search_substring_glob_and_limit():
    names = [f"n{i % 7}::field_{i:06d}" for i in range(100_000)]
    names.sort()
    hits = targets.search(names, "FIELD_00001", 1000)
    assert hits == sorted(n for n in names if "field_00001" in n)
    assert len(targets.search(names, "", 50)) == 50
    assert targets.search(names, "n3::field_00000?", 100) == ["n3::field_000003"]


# -- regular expressions run on RE2: linear time, bounded length (issue 13) -------------------
PATHOLOGICAL = "(.*)*!"   # with Python's re, 43 s of backtracking against a 28-character name


@pytest.mark.timeout(60)  # a bound against freezing (backtracking takes minutes to forever), not a speed figure
def test_a_pathological_regex_filter_cannot_freeze_the_bridge():
    name = "thermometer_still_plate_4k_x"
    assert len(name) == 28
    catalog = {"sim": {name: {"units": "K", "type": "number"}, "warn!": {"units": "", "type": "string"}}}
    t = parse_target({"target": "*::*"}, 0)
    assert targets.expand(t, catalog, [Filter("field", "=~", PATHOLOGICAL)]) == [("sim", "warn!")]
    assert targets.expand(t, catalog, [Filter("field", "!~", PATHOLOGICAL)]) == [("sim", name)]
    longer = "x" * 4000                       # forever for a backtracking engine
    assert not Filter("field", "=~", PATHOLOGICAL).matches("sim", longer, {})


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=a)b", "(?<!a)b", "(", "a{2000}"])
def test_what_re2_refuses_is_a_400_saying_why(pattern):
    with pytest.raises(RequestError) as err:
        Filter("node", "=~", pattern)
    assert err.value.status == 400 and "filter regex" in err.value.message and "RE2" in err.value.message


def test_patterns_are_bounded_in_length():
    assert Filter("field", "=~", "a" * patterns.MAX_PATTERN).matches("sim", "a" * patterns.MAX_PATTERN, {})
    for make in (lambda p: Filter("field", "!~", p), lambda p: patterns.glob(p),
                 lambda p: targets.search(["x"], p + "*", 10)):
        with pytest.raises(RequestError) as err:
            make("a" * (patterns.MAX_PATTERN + 1))
        assert f"at most {patterns.MAX_PATTERN}" in err.value.message
    long_glob = parse_target({"target": "sim::" + "?" * (patterns.MAX_PATTERN + 1)}, 0)
    with pytest.raises(RequestError):
        targets.expand(long_glob, CATALOG)
    # an exact name is no pattern: any length goes to its node
    exact = parse_target({"target": "sim::" + "x" * 5000}, 0)
    assert targets.expand(exact, CATALOG) == [("sim", "x" * 5000)]


TOKENS = ["a", "b", "!", ".", "a*", "b+", "(a|b)", "[ab]", "[^a]", "^", "$", "(ab)*", r"\w", "a?"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6), st.text("ab!_", max_size=12))
def test_re2_agrees_with_python_re_on_ordinary_patterns(tokens, text):
    pattern = "".join(tokens)
    assert patterns.regex(pattern)(text) == (re.search(pattern, text) is not None)


@settings(max_examples=300, deadline=None)
@given(st.text("ab*?[]!-", max_size=8), st.text("ab!-", max_size=8))
def test_globs_match_as_fnmatch_does(pattern, name):
    assert patterns.glob(pattern)(name) == fnmatch.fnmatchcase(name, pattern)
    assert patterns.glob_filter([name], pattern) == fnmatch.filter([name], pattern)
