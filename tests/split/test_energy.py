"""The estimated phone energy against a case computed by hand from the published constants."""

import pytest

from zoo.errors import ConfigError
from zoo.split.energy import COMPUTE_MW, RADIOS, phone_energy
from zoo.split.link import PRESETS, Link

LINK = Link("lte", 8.0, 16.0, 50.0)


def test_one_case_by_hand():
    # 100 ms on one core; 1 MB up at 8 Mbit/s (1000 ms); 50 kB down at 16 Mbit/s (25 ms);
    # 200 ms waiting. LTE (Huang et al. 2012, Table 4): alpha_u 438.39, alpha_d 51.97 mW per
    # Mbit/s, beta 1288.04 mW; one core 750 mW.
    energy = phone_energy(LINK, device_ms=100, up_bytes=1_000_000, down_bytes=50_000,
                          wait_ms=200)
    compute = 750 * 0.100                              # 75 mJ
    up = (438.39 * 8 + 1288.04) * 1.000                # 4795.16 mJ
    down = (51.97 * 16 + 1288.04) * 0.025              # 52.989 mJ
    idle = 1288.04 * 0.200                             # 257.608 mJ
    assert energy.compute_mj == pytest.approx(compute)
    assert energy.radio_mj == pytest.approx(up + down)
    assert energy.idle_mj == pytest.approx(idle)
    assert energy.tail_mj == 0.0
    assert energy.total_mj == pytest.approx(5180.757)
    assert energy.estimated is True and energy.as_dict()["estimated"] is True
    assert str(energy).startswith("estimated phone energy 5180.8 mJ")
    assert "tail left out" in str(energy)


def test_tail_is_the_papers_one_packet_energy_when_asked():
    without = phone_energy(LINK, 100, 1_000_000, 50_000, 200)
    with_tail = phone_energy(LINK, 100, 1_000_000, 50_000, 200, tail=True)
    assert with_tail.tail_mj == 12760.0  # "12.76 J" for LTE, promotion and tail
    assert with_tail.total_mj == pytest.approx(without.total_mj + 12760.0)
    assert [RADIOS[r].one_packet_tail_mj for r in ("3g", "wifi")] == [7380.0, 40.0]


def test_cores_and_compute_power_scale_compute():
    energy = phone_energy(LINK, 100, 0, 0, 0, cores=4, compute_mw=500)
    assert energy.compute_mj == pytest.approx(4 * 500 * 0.1)
    assert energy.total_mj == energy.compute_mj
    assert COMPUTE_MW == 750.0


def test_the_radio_comes_from_the_link_or_is_named():
    assert phone_energy(PRESETS["wifi"], 0, 1000, 0, 0).radio == "wifi"
    custom = Link("8/8mbps-40ms", 8.0, 8.0, 40.0)
    with pytest.raises(ConfigError, match=r"^--radio must be one of lte, 3g, wifi for the link "
                                          r"'8/8mbps-40ms', got '8/8mbps-40ms'$"):
        phone_energy(custom, 0, 1000, 0, 0)
    assert phone_energy(custom, 0, 1000, 0, 0, radio="3g").radio == "3g"


def test_negative_times_are_refused():
    with pytest.raises(ValueError, match="wait_ms"):
        phone_energy(LINK, 0, 0, 0, -1)
