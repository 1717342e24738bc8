"""The link presets, the ``--link`` grammar with its one-line errors, and the request-time model
against hand-computed values."""

import pytest

from zoo.errors import ConfigError
from zoo.split.link import PRESETS, Link, parse_link, request_ms, transfer_ms

FORMS = "wifi, lte, 3g, BW,RTT or UP/DOWN,RTT (Mbit/s and ms, each > 0)"


@pytest.mark.parametrize("name", ["wifi", "lte", "3g"])
def test_presets(name):
    link = parse_link(name)
    assert link is PRESETS[name] and link.name == name
    assert parse_link(f" {name.upper()} ") is link
    assert link.uplink_mbps > 0 and link.downlink_mbps >= link.uplink_mbps and link.rtt_ms > 0


def test_preset_numbers_are_the_cited_ones():
    # Neurosurgeon's uplinks (Kang et al. 2017), Huang et al. 2012's LTE downlink median.
    assert [PRESETS[n].uplink_mbps for n in ("3g", "lte", "wifi")] == [1.1, 5.85, 18.88]
    assert PRESETS["lte"].downlink_mbps == 13.0


@pytest.mark.parametrize("spec, expected", [
    ("8,40", Link("8/8mbps-40ms", 8.0, 8.0, 40.0)),
    ("6/13, 70", Link("6/13mbps-70ms", 6.0, 13.0, 70.0)),
    ("0.5/1e1,250.5", Link("0.5/10mbps-250.5ms", 0.5, 10.0, 250.5)),
    ((8, 40), Link("8/8mbps-40ms", 8.0, 8.0, 40.0)),  # fire parses 8,40 into a tuple
    (("6/13", 70), Link("6/13mbps-70ms", 6.0, 13.0, 70.0)),
])
def test_custom_links(spec, expected):
    assert parse_link(spec) == expected


def test_a_link_passes_through():
    link = Link("mine", 1.0, 2.0, 3.0)
    assert parse_link(link) is link


@pytest.mark.parametrize("spec", [
    "", "5g", "8", "8,", ",40", "0,40", "8,0", "-8,40", "8,-40", "nan,40", "8,nan", "inf,40",
    "8/0,40", "/8,40", "1/2/3,40", "8,40,1", "eight,40", None, 8, True, (1, 2, 3),
])
def test_bad_specs_are_one_line_errors(spec):
    with pytest.raises(ConfigError) as error:
        parse_link(spec)
    assert str(error.value) == f"--link must be {FORMS}, got {spec!r}"


def test_the_flag_is_named_as_given():
    with pytest.raises(ConfigError, match=r"^--links must be "):
        parse_link("x", flag="--links")


def test_transfer_is_serialisation_only():
    link = Link("t", 8.0, 16.0, 50.0)
    assert transfer_ms(link, 1_000_000) == pytest.approx(1000.0)  # 8e6 bit / 8e6 bit/s
    assert transfer_ms(link, 1_000_000, "down") == pytest.approx(500.0)
    assert transfer_ms(link, 0) == 0.0


def test_request_is_rtt_plus_both_transfers():
    link = Link("t", 8.0, 16.0, 50.0)
    assert request_ms(link, 1_000_000, 50_000) == pytest.approx(50.0 + 1000.0 + 25.0)
    assert request_ms(link, 0, 0) == 50.0
    lte = PRESETS["lte"]  # a 224x224 RGB frame up, its label map down
    assert request_ms(lte, 150_528, 50_176) == pytest.approx(
        70.0 + 150_528 * 8 / 5850 + 50_176 * 8 / 13000)


@pytest.mark.parametrize("direction, nbytes", [("sideways", 1), ("up", -1)])
def test_bad_transfer_arguments(direction, nbytes):
    with pytest.raises(ValueError):
        transfer_ms(PRESETS["wifi"], nbytes, direction)
