"""``di-archiver simulate``: serve the DI simulator until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import threading

from di_archiver.layout import validate_org_id
from di_archiver.simulator.config import (
    DEMO_API_KEY,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    FaultConfig,
    LateIndexingConfig,
    OrgSpec,
    SimulatorConfig,
    SimulatorError,
)
from di_archiver.simulator.core import Simulator
from di_archiver.simulator.server import is_loopback

NAME = "simulate"
HELP = "Serve a local JumpCloud Directory Insights API simulator (127.0.0.1 only)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``di-archiver simulate``."""
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8089, help="TCP port (0 = any free port)")
    parser.add_argument("--seed", type=int, default=7, help="corpus and fault seed")
    parser.add_argument("--events", type=int, default=20_000, help="events per organisation")
    parser.add_argument("--days", type=float, default=3.0, help="days of history ending now")
    parser.add_argument("--orgs", type=int, default=1, help="number of organisations")
    parser.add_argument(
        "--org-id",
        dest="org_ids",
        action="append",
        metavar="ORG_ID",
        help="serve this organisation id (repeat; replaces --orgs' generated ids)",
    )
    parser.add_argument(
        "--fault-rate", type=float, default=0.02, help="rate of EACH fault type (0 = off)"
    )
    parser.add_argument(
        "--late-share", type=float, default=0.05, help="share of events indexed late"
    )
    parser.add_argument("--api-key", default=DEMO_API_KEY, help="API key the server accepts")


def org_ids(count: int) -> tuple[str, ...]:
    """Stable demo org ids: ``64a0c0ffee0000000000a001``, ``...a002``, ..."""
    return tuple(f"64a0c0ffee0000000000{0xA001 + i:04x}" for i in range(count))


def build_config(args: argparse.Namespace) -> SimulatorConfig:
    """The simulator configuration for parsed CLI arguments."""
    if not is_loopback(args.host):
        raise SimulatorError(
            f"--host {args.host!r} is not a loopback address; the simulator only listens "
            "on 127.0.0.1 (or ::1)"
        )
    if args.orgs < 1 or args.events < 0 or args.days <= 0:
        raise SimulatorError("--orgs must be >= 1, --events >= 0 and --days > 0")
    if not 0.0 <= args.fault_rate <= 1 / 6 or not 0.0 <= args.late_share <= 1.0:
        raise SimulatorError("--fault-rate must be in [0, 1/6] and --late-share in [0, 1]")
    ids = tuple(args.org_ids) if getattr(args, "org_ids", None) else org_ids(args.orgs)
    for org_id in ids:
        validate_org_id(org_id)
    return SimulatorConfig(
        seed=args.seed,
        orgs=tuple(OrgSpec(org_id=o, event_count=args.events) for o in ids),
        span_seconds=args.days * 86_400,
        api_keys={args.api_key: ids[0]},
        service_accounts={DEMO_CLIENT_ID: DEMO_CLIENT_SECRET},
        faults=FaultConfig.modest(args.fault_rate, seed=args.seed),
        late=LateIndexingConfig(share=args.late_share),
    )


def _wait(stop: threading.Event | None) -> None:
    waiter = stop or threading.Event()
    try:
        while not waiter.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def run(args: argparse.Namespace, *, stop: threading.Event | None = None) -> int:
    """Build the corpus, serve, print how to connect; block until Ctrl-C (or ``stop``)."""
    config = build_config(args)
    simulator = Simulator(config)
    with simulator.serve(host=args.host, port=args.port) as server:
        # Printing the demo credentials is the point of this command: they only open the
        # simulator, never a real JumpCloud account.
        if getattr(args, "json", False):
            ready = {
                "command": NAME,
                "base_url": server.base_url,
                "api_url": server.api_url,
                "token_url": server.token_url,
                "api_key": args.api_key,
                "client_id": DEMO_CLIENT_ID,
                "client_secret": DEMO_CLIENT_SECRET,
                "orgs": [{"org_id": o.org_id, "events": o.event_count} for o in config.orgs],
            }
            print(json.dumps(ready), flush=True)
            _wait(stop)
            return 0
        print(f"DI simulator listening on {server.base_url}", flush=True)
        print(f"  DI API:        {server.api_url}")
        print(f"  token URL:     {server.token_url}")
        print(f"  API key:       {args.api_key}")
        print(f"  client id:     {DEMO_CLIENT_ID}")
        print(f"  client secret: {DEMO_CLIENT_SECRET}")
        for org in config.orgs:
            print(f"  org id:        {org.org_id}  ({org.event_count} events)")
        print("Press Ctrl-C to stop.", flush=True)
        _wait(stop)
        stats = simulator.stats
        print(f"stopped after {stats['requests']} requests ({stats['faults']} faults injected)")
    return 0
