"""An **estimate** of the phone's energy for one inference split between phone and server:
compute, radio, waiting, and (optionally) the cellular radio's tail. Nothing here is measured
on a phone; every figure is a published power times a time from this project.

Example::

    from zoo.split.link import parse_link
    link = parse_link("lte")
    energy = phone_energy(link, device_ms=40.0, up_bytes=150_528, down_bytes=50_176,
                          wait_ms=30.0 + link.rtt_ms)
    energy.total_mj, energy.estimated         # (..., True)
    str(energy)                               # "estimated phone energy 1234.5 mJ (...)"

The model, part by part (power in mW, time in ms, so mW * ms / 1000 = mJ):

- **compute** = `compute_mw` * `cores` * `device_ms`. `COMPUTE_MW` = 750 mW is one phone CPU
  core at full load: AnandTech measured one Krait core of a Snapdragon S4 (MSM8960, Qualcomm's
  development phone, Trepn power rails) at "around 750 mW at maximum load" at 1.5 GHz
  ("Qualcomm Snapdragon S4 (Krait) Performance Preview", 2012), the same phone generation as
  the radio model below. Pass `cores` for a multi-threaded run, `compute_mw` for another phone.
- **radio**, while bytes move: Huang et al., "A Close Examination of Performance and Power
  Characteristics of 4G LTE Networks", MobiSys 2012, Table 4, the linear model
  P = alpha_u * t_u + alpha_d * t_d + beta with t the throughput in Mbit/s, fitted on their
  phone (the constants in `RADIOS`). Each direction is sent alone at the link's rate, so
  E_up = (alpha_u * uplink + beta) * transfer time, and likewise down.
- **idle**, while the phone waits with no bytes moving (the server's compute and the RTT,
  whatever the caller passes as `wait_ms`): the radio stays connected, costed with the same
  model at zero throughput, i.e. beta. For LTE this is pessimistic: the measured tail power
  after a transfer is 1060 mW against beta = 1288 mW. The CPU's idle power and the screen are
  left out: they are the same for every split per unit time, and small next to the radio.
- **tail**: left out unless ``tail=True``. After the last packet a cellular radio stays in a
  high-power state until a timer runs out (11.576 s for the LTE network Huang et al.
  measured). Their figure for one isolated packet, promotion and tail included, is 12.76 J
  on LTE, 7.38 J on 3G and 0.04 J on Wi-Fi ("if only one packet is transferred, the energy
  usage considering both promotion and tail energy ..."); ``tail=True`` adds that per request,
  which fits requests further apart than the timer. A stream of frames keeps the radio
  connected and pays the tail once per burst, which is why it is not in the default total.

The constants were cross-checked against copies of Huang et al.'s Table 4 in public code (the
paper's PDF itself was not readable here). A 2012 handset's radio and a 2012 CPU core: use the
result for comparing splits with each other, not as an absolute battery figure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from zoo.errors import ConfigError
from zoo.split.link import Link, transfer_ms

COMPUTE_MW = 750.0  # one Krait core at 1.5 GHz, full load (AnandTech 2012, MSM8960 MDP)


@dataclass(frozen=True)
class Radio:
    """Huang et al. 2012, Table 4: mW per Mbit/s up and down, and base power beta in mW; and
    their energy in mJ of one isolated packet, promotion and tail included."""

    alpha_up: float
    alpha_down: float
    beta: float
    one_packet_tail_mj: float


RADIOS = {
    "lte": Radio(alpha_up=438.39, alpha_down=51.97, beta=1288.04, one_packet_tail_mj=12760.0),
    "3g": Radio(alpha_up=868.98, alpha_down=122.12, beta=817.88, one_packet_tail_mj=7380.0),
    "wifi": Radio(alpha_up=283.17, alpha_down=137.01, beta=132.86, one_packet_tail_mj=40.0),
}


@dataclass(frozen=True)
class Energy:
    """Estimated phone energy of one inference, in mJ, by part (see the module docstring)."""

    compute_mj: float
    radio_mj: float
    idle_mj: float
    tail_mj: float
    total_mj: float
    radio: str
    estimated: bool = True

    def as_dict(self) -> dict:
        """The figures with ``estimated: True`` beside them (for JSON reports)."""
        return asdict(self)

    def __str__(self) -> str:
        tail = f"tail {self.tail_mj:.1f}" if self.tail_mj else "tail left out"
        return (f"estimated phone energy {self.total_mj:.1f} mJ (compute "
                f"{self.compute_mj:.1f}, radio {self.radio_mj:.1f}, idle {self.idle_mj:.1f}, "
                f"{tail}; {self.radio} radio model of Huang et al. 2012)")


def phone_energy(link: Link, device_ms: float, up_bytes: int, down_bytes: int, wait_ms: float,
                 *, radio: str | None = None, cores: int = 1, compute_mw: float = COMPUTE_MW,
                 tail: bool = False) -> Energy:
    """Estimated energy of one split inference on the phone (an `Energy`, always
    ``estimated=True``). `radio` picks the power model (``wifi``, ``lte``, ``3g``); it defaults
    to the link's name, so a custom ``BW,RTT`` link needs it."""
    radio = radio if radio is not None else link.name
    if radio not in RADIOS:
        raise ConfigError(f"--radio must be one of {', '.join(RADIOS)} for the link "
                          f"{link.name!r}, got {radio!r}")
    for name, value in (("device_ms", device_ms), ("wait_ms", wait_ms)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    model = RADIOS[radio]
    compute = compute_mw * cores * device_ms / 1e3
    up = (model.alpha_up * link.uplink_mbps + model.beta) * transfer_ms(link, up_bytes, "up")
    down = ((model.alpha_down * link.downlink_mbps + model.beta)
            * transfer_ms(link, down_bytes, "down"))
    radio_mj = (up + down) / 1e3
    idle = model.beta * wait_ms / 1e3
    tail_mj = model.one_packet_tail_mj if tail else 0.0
    return Energy(compute_mj=compute, radio_mj=radio_mj, idle_mj=idle, tail_mj=tail_mj,
                  total_mj=compute + radio_mj + idle + tail_mj, radio=radio)
