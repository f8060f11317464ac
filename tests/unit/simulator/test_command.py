"""``di-archiver simulate`` argument handling (no server started here)."""

from __future__ import annotations

import argparse

import pytest

from di_archiver.cli import build_parser
from di_archiver.simulator import SimulatorError, command


def _args(*argv: str) -> argparse.Namespace:
    return build_parser([command]).parse_args(["simulate", *argv])


def test_defaults_make_a_demo_config() -> None:
    config = command.build_config(_args())
    assert [o.org_id for o in config.orgs] == ["64a0c0ffee0000000000a001"]
    assert config.faults.rate_500 > 0
    assert config.late.share > 0


def test_options_shape_the_config() -> None:
    args = _args("--orgs", "3", "--events", "500", "--days", "2", "--seed", "9",
                 "--fault-rate", "0", "--late-share", "0.5", "--api-key", "k")  # fmt: skip
    config = command.build_config(args)
    assert [o.org_id[-4:] for o in config.orgs] == ["a001", "a002", "a003"]
    assert all(o.event_count == 500 for o in config.orgs)
    assert config.span_seconds == 2 * 86_400
    assert config.seed == 9
    assert config.faults.rate_503 == 0
    assert config.late.share == 0.5
    assert dict(config.api_keys) == {"k": "64a0c0ffee0000000000a001"}


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])
def test_non_loopback_host_is_refused(host: str) -> None:
    with pytest.raises(SimulatorError, match="loopback"):
        command.build_config(_args("--host", host))
