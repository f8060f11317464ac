"""The DI ``service`` values this version knows: one list for engine, simulator and Athena."""

import re

# The current SPEC enum (less "all") plus "workflows", which JumpCloud's own exporter accepts.
KNOWN_SERVICES: tuple[str, ...] = (
    "access_management",
    "alerts",
    "asset_management",
    "directory",
    "ldap",
    "mdm",
    "notifications",
    "object_storage",
    "password_manager",
    "radius",
    "reports",
    "saas_app_management",
    "software",
    "sso",
    "systems",
    "workflows",
)

ALL_SERVICES = "all"

# A service value from an event becomes part of an S3 key, so it must be a safe path segment.
SERVICE_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")

# Events whose "service" is missing or not a safe path segment are kept here, never dropped.
UNRECOGNISED_SERVICE_PARTITION = "_unrecognised"
