"""The application layer: one function per use case, shared by the Lambda handler and the CLI.

Each use case takes the validated settings and the ports the composition root (``wiring``)
built, composes the domain, and returns a typed report; entry points only parse their input,
call one use case and present its report. New behaviour goes into a use case here (or the
domain below it), never into ``handler.py`` or ``commands/``.
"""

from di_archiver.application.archive import ArchiveReport, archive, planned_buckets, resnapshot
from di_archiver.application.fanout import (
    DispatchReport,
    OrgMessage,
    OrgQueue,
    archive_org,
    dispatch,
)
from di_archiver.application.maintain import (
    check_object_lock,
    maintain,
    maintenance_summary,
    object_lock_retention,
)
from di_archiver.application.runtime import MaintenancePorts, Runtime
from di_archiver.application.status import NoSource, status
from di_archiver.application.verify import (
    count_objects,
    parse_expected_head,
    verify,
    verify_summary,
)
from di_archiver.domain.engine import EngineRunError

__all__ = [
    "ArchiveReport",
    "DispatchReport",
    "EngineRunError",
    "MaintenancePorts",
    "NoSource",
    "OrgMessage",
    "OrgQueue",
    "Runtime",
    "archive",
    "archive_org",
    "check_object_lock",
    "count_objects",
    "dispatch",
    "maintain",
    "maintenance_summary",
    "object_lock_retention",
    "parse_expected_head",
    "planned_buckets",
    "resnapshot",
    "status",
    "verify",
    "verify_summary",
]
