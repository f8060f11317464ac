"""A local, faithful stand-in for the JumpCloud Directory Insights API (tests and demos).

Importing this package starts nothing: corpora are built when a ``Simulator`` is created and
the HTTP server only runs inside ``Simulator.serve()``.
"""

from di_archiver.simulator.clock import SimulatorClock
from di_archiver.simulator.config import (
    FaultConfig,
    LateIndexingConfig,
    OrgSpec,
    RateLimitConfig,
    SimulatorConfig,
    SimulatorError,
)
from di_archiver.simulator.core import API_PREFIX, TOKEN_PATH, SimResponse, Simulator
from di_archiver.simulator.faults import FaultKind
from di_archiver.simulator.server import SimulatorServer

__all__ = [
    "API_PREFIX",
    "TOKEN_PATH",
    "FaultConfig",
    "FaultKind",
    "LateIndexingConfig",
    "OrgSpec",
    "RateLimitConfig",
    "SimResponse",
    "Simulator",
    "SimulatorClock",
    "SimulatorConfig",
    "SimulatorError",
    "SimulatorServer",
]
