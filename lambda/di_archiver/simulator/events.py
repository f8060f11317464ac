"""Deterministic, realistic DI event objects, one service template each.

An event is a pure function of (seed, org, generation index, timestamp, service): the same
inputs give the same dict, hence the same JSON bytes, in any process. Shapes follow
``di-sample-events.jsonl`` and di-api.md section 4.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from di_archiver.timestamps import NS_PER_SECOND, format_timestamp_ns

T = TypeVar("T")
Event = dict[str, Any]

_REFILL_BELOW = 1 << 64


class Rand:
    """A cheap deterministic stream of choices drawn from BLAKE2b of a key.

    Each draw peels a mixed-radix digit off a 512-bit pool, which is far cheaper than
    seeding a ``random.Random`` per event (the hot path renders tens of thousands a second).
    """

    __slots__ = ("_counter", "_key", "_pool")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._counter = 0
        self._pool = 0
        self._refill()

    def _refill(self) -> None:
        digest = hashlib.blake2b(
            self._key + self._counter.to_bytes(4, "big"), digest_size=64
        ).digest()
        self._counter += 1
        self._pool = int.from_bytes(digest, "big") | (1 << 512)

    def below(self, n: int) -> int:
        """A number in ``[0, n)``."""
        if self._pool < _REFILL_BELOW or n > 1 << 128:
            self._refill()
        self._pool, digit = divmod(self._pool, n)
        return digit

    def pick(self, seq: Sequence[T]) -> T:
        """One element of ``seq``."""
        return seq[self.below(len(seq))]

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""
        return self.below(1_000_000) < p * 1_000_000

    def hex(self, digits: int) -> str:
        """Lower-case hex string of ``digits`` characters."""
        return format(self.below(16**digits), f"0{digits}x")

    def uuid(self, upper: bool = False, version: int = 4) -> str:
        """A UUID-shaped string with the given version nibble."""
        h = self.hex(32)
        variant = "89ab"[int(h[16], 16) % 4]
        text = f"{h[:8]}-{h[8:12]}-{version}{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"
        return text.upper() if upper else text


def object_id(rand: Rand) -> str:
    """A 24-hex (Mongo ObjectId-like) id."""
    return rand.hex(24)


# --- shared vocabularies ----------------------------------------------------------------------

_FIRST = (
    "Jordan", "Sam", "Alex", "José", "Zoë", "Łukasz", "Søren", "Amélie", "Ngọc", "Siobhán",
    "Ана", "李雷", "Mateus", "Priya", "Oğuz", "Björk", "Chloé", "Dmitrí", "Aoife", "Kenji",
)  # fmt: skip
_LAST = (
    "Lee", "Ortiz", "Müller", "Ødegaard", "Nguyễn", "García", "Kowalski", "O'Brien",
    "Петрова", "王", "Dubois", "Sharma", "Yılmaz", "Tanaka", "Fernández", "Smith",
)  # fmt: skip
_ASCII = str.maketrans(
    "éèëöüøőłńçğıñãọạễóíáâ", "eeeouoolncginaoaeoiaa", "'"
)  # fmt: skip

_GEO: tuple[dict[str, Any], ...] = (
    {"country_code": "US", "region_code": "CO", "region_name": "Colorado",
     "continent_code": "NA", "timezone": "America/Denver", "latitude": 39.7392,
     "longitude": -104.9903},
    {"country_code": "DE", "region_code": "BE", "region_name": "Land Berlin",
     "continent_code": "EU", "timezone": "Europe/Berlin", "latitude": 52.5163,
     "longitude": 13.3777},
    {"country_code": "JP", "region_code": "13", "region_name": "Tōkyō",
     "continent_code": "AS", "timezone": "Asia/Tokyo", "latitude": 35.6893,
     "longitude": 139.6899},
    {"country_code": "BR", "region_code": "SP", "region_name": "São Paulo",
     "continent_code": "SA", "timezone": "America/Sao_Paulo", "latitude": -23.5335,
     "longitude": -46.6359},
    {"country_code": "AU", "region_code": "SA", "region_name": "South Australia",
     "continent_code": "OC", "timezone": "Australia/Adelaide", "latitude": -34.9287,
     "longitude": 138.5986},
)  # fmt: skip
_OFFSETS = ((-6 * 60, "-06:00"), (60, "+01:00"), (9 * 60, "+09:00"), (-3 * 60, "-03:00"),
            (570, "+09:30"), (0, "+00:00"))  # fmt: skip

_UA: tuple[dict[str, str], ...] = (
    {"name": "Chrome", "major": "126", "minor": "0", "patch": "0", "version": "126.0.0.0",
     "os": "Mac OS X", "os_name": "Mac OS X", "os_full": "Mac OS X 14.5", "os_major": "14",
     "os_minor": "5", "os_patch": "0", "os_version": "14.5", "device": "Mac"},
    {"name": "Edge", "major": "125", "minor": "0", "patch": "2535", "version": "125.0.2535.85",
     "os": "Windows", "os_name": "Windows", "os_full": "Windows 10", "os_major": "10",
     "os_minor": "", "os_patch": "", "os_version": "10", "device": "Other"},
    {"name": "Firefox", "major": "127", "minor": "0", "patch": "", "version": "127.0",
     "os": "Ubuntu", "os_name": "Ubuntu", "os_full": "Ubuntu", "os_major": "", "os_minor": "",
     "os_patch": "", "os_version": "", "device": "Other"},
    {"name": "curl", "major": "8", "minor": "4", "patch": "0", "version": "8.4.0", "os": "Other",
     "os_name": "Other", "os_full": "Other", "device": "Other"},
    {"name": "Mobile Safari", "major": "17", "minor": "5", "patch": "", "version": "17.5",
     "os": "iOS", "os_name": "iOS", "os_full": "iOS 17.5.1", "os_major": "17", "os_minor": "5",
     "os_patch": "1", "os_version": "17.5.1", "device": "iPhone", "build": "21F90"},
)  # fmt: skip

_OSES = (("Mac OS X", "14.5"), ("Windows", "10.0.22631"), ("Ubuntu", "22.04"), ("Mac OS X", "15.1"))
_APPS = ("examplewiki", "examplecrm", "ticketdesk", "payrollhub", "codeforge", "chatops")
_SOFTWARE = (
    ("Google Chrome", "Google LLC"), ("Slack", "Slack Technologies"), ("Zoom", "Zoom Video"),
    ("Visual Studio Code", "Microsoft Corporation"), ("1Password", "AgileBits"),
    ("Firefox", "Mozilla"), ("Docker Desktop", "Docker Inc."),
)  # fmt: skip


def _ascii_part(name: str, rand: Rand) -> str:
    # Usernames stay ASCII even when the display name has no Latin letters at all.
    plain = name.lower().translate(_ASCII).encode("ascii", "ignore").decode()
    return plain or f"u{rand.hex(4)}"


def _ip(rand: Rand) -> str:
    # Documentation ranges only (RFC 5737), so generated data never names a real host.
    return f"{rand.pick(('192.0.2', '198.51.100', '203.0.113'))}.{1 + rand.below(254)}"


@dataclass(frozen=True, slots=True)
class Person:
    """A simulated user or administrator."""

    id: str
    username: str
    email: str
    display_name: str


@dataclass(frozen=True, slots=True)
class Device:
    """A simulated managed system."""

    id: str
    hostname: str
    os: str
    version: str


@dataclass(frozen=True, slots=True)
class OrgEntities:
    """The stable cast of an organisation that its events refer to."""

    org_id: str
    users: tuple[Person, ...]
    admins: tuple[Person, ...]
    systems: tuple[Device, ...]
    apps: tuple[tuple[str, str], ...]  # (object id, name)
    groups: tuple[tuple[str, str], ...]


def build_entities(seed: int, org_id: str, users: int = 120, systems: int = 60) -> OrgEntities:
    """The org's users, admins, systems, apps and groups, derived from the seed."""
    rand = Rand(f"entities:{seed}:{org_id}".encode())

    def person(domain: str) -> Person:
        first, last = rand.pick(_FIRST), rand.pick(_LAST)
        plain = ".".join(_ascii_part(name, rand) for name in (first, last))
        username = f"{plain}{rand.below(100)}" if rand.chance(0.3) else plain
        return Person(object_id(rand), username, f"{username}@{domain}", f"{first} {last}")

    people = tuple(person("example.test") for _ in range(users))
    admins = tuple(person("admin.example.test") for _ in range(max(3, users // 20)))
    devices = []
    for i in range(systems):
        os_name, version = rand.pick(_OSES)
        prefix = {"Mac OS X": "MAC", "Windows": "WIN", "Ubuntu": "LNX"}[os_name]
        devices.append(Device(object_id(rand), f"{prefix}-{rand.hex(4).upper()}-{i:02d}",
                              os_name, version))  # fmt: skip
    apps = tuple((object_id(rand), name) for name in _APPS)
    groups = tuple(
        (object_id(rand), name)
        for name in ("Engineering", "Finance", "Ventes & Marketing", "Support", "Führung")
    )
    return OrgEntities(org_id, people, admins, tuple(devices), apps, groups)


# --- service templates ------------------------------------------------------------------------


class _Ctx:
    """What a template needs: the event's random stream, org cast, timestamp."""

    __slots__ = ("ents", "rand", "ts_ns")

    def __init__(self, rand: Rand, ents: OrgEntities, ts_ns: int) -> None:
        self.rand = rand
        self.ents = ents
        self.ts_ns = ts_ns


def _admin_ref(c: _Ctx) -> dict[str, Any]:
    a = c.rand.pick(c.ents.admins)
    return {"id": a.id, "type": "admin", "email": a.email}


def _user_ref(c: _Ctx) -> dict[str, Any]:
    u = c.rand.pick(c.ents.users)
    return {"id": u.id, "type": "user", "username": u.username}


def _web(c: _Ctx, event: Event, ua_key: str = "useragent") -> None:
    event["client_ip"] = _ip(c.rand)
    event["geoip"] = c.rand.pick(_GEO)
    event[ua_key] = c.rand.pick(_UA)


_DIR_TYPES = (
    "user_update", "user_update", "user_login_attempt", "admin_login_attempt",
    "association_change", "user_create", "group_update", "system_update", "user_delete",
    "application_update", "policy_update", "command_run", "user_password_change",
    "organization_update", "user_lockout", "totp_finish_enrollment",
    # Rare in a real org, but the named query admins_created must have something to find.
    "admin_create", "user_admin_granted",
)  # fmt: skip


def _directory(c: _Ctx, event: Event) -> None:
    r = c.rand
    etype = r.pick(_DIR_TYPES)
    event["event_type"] = etype
    event["provider"] = None
    event["success"] = r.chance(0.93)
    _web(c, event)
    event["auth_method"] = r.pick(("session", "session", "api key"))
    initiator = _admin_ref(c)
    if r.chance(0.1):
        initiator["source"] = r.pick(("scim", "system"))
    event["initiated_by"] = initiator
    u = r.pick(c.ents.users)
    if etype == "admin_create":
        event["resource"] = _admin_ref(c)  # the new administrator account
    elif etype.startswith("admin"):
        event["resource"] = dict(initiator)
        event["mfa"] = r.chance(0.8)
        event["mfa_meta"] = {"type": r.pick(("totp", "webauthn", "none"))}
    elif etype.startswith("group"):
        gid, gname = r.pick(c.ents.groups)
        event["resource"] = {"id": gid, "type": "user_group", "name": gname}
    elif etype.startswith("system"):
        d = r.pick(c.ents.systems)
        event["resource"] = {"id": d.id, "type": "system", "hostname": d.hostname}
    elif etype.startswith("application"):
        aid, aname = r.pick(c.ents.apps)
        event["resource"] = {"id": aid, "type": "application", "name": aname}
    elif etype == "organization_update":
        event["resource"] = {"id": c.ents.org_id, "type": "organization"}
    elif etype == "user_admin_granted":
        event["resource"] = {"id": u.id, "type": "user", "username": u.username, "email": u.email}
    else:
        event["resource"] = {"id": u.id, "type": "user", "username": u.username}
    if etype.endswith("_update"):
        event["changes"] = [
            {"field": "department", "from": r.pick(("Finance", "Opérations")), "to": "Support"},
            {"field": "suspended", "from": False, "to": r.chance(0.3)},
        ]
        event["correlation"] = {}
    if etype == "association_change":
        # A user bound to a system, or (as often) added to or removed from a user group.
        if r.chance(0.5):
            d = r.pick(c.ents.systems)
            source = {"name": d.hostname, "type": "system", "object_id": d.id}
        else:
            gid, gname = r.pick(c.ents.groups)
            source = {"name": gname, "type": "user_group", "object_id": gid}
        event["association"] = {
            "op": r.pick(("add", "remove")),
            "action_source": "manual",
            "attributes": None,
            "connection": {
                "from": source,
                "to": {"name": u.username, "type": "user", "object_id": u.id},
            },
        }
    if etype.endswith("login_attempt"):
        event["auth_context"] = {
            "auth_methods": {"password": {"success": event["success"]}},
            "policies_applied": [],
        }


def _sso(c: _Ctx, event: Event) -> None:
    r = c.rand
    ok = r.chance(0.9)
    aid, aname = r.pick(c.ents.apps)
    event.update(
        event_type="sso_auth", provider="", success=ok, sso_token_success=ok,
        mfa=r.chance(0.5), idp_initiated=r.chance(0.5),
        error_message="" if ok else r.pick(("not authorized", "user not found")),
    )  # fmt: skip
    _web(c, event)
    event["initiated_by"] = _user_ref(c)
    event["application"] = {
        "id": aid, "name": aname, "display_label": aname.title(), "sso_type": "saml",
        "sso_url": f"https://sso.jumpcloud.com/saml2/{aname}",
    }  # fmt: skip
    d = r.pick(c.ents.systems)
    event["auth_context"] = {
        "auth_methods": {},
        "system": {"id": d.id, "hostname": d.hostname, "displayName": d.hostname,
                   "os": d.os, "version": d.version},
        "policies_applied": [{"id": "", "name": "Global Policy",
                              "metadata": {"resource_type": "APPLICATION", "action": "ALLOW"}}],
    }  # fmt: skip


def _radius(c: _Ctx, event: Event) -> None:
    r = c.rand
    u = r.pick(c.ents.users)
    ok = r.chance(0.85)
    error = None if ok else r.pick(("invalid credentials", "MFA required"))
    eap = r.pick(("MSCHAPv2", "TTLS", "PEAP"))
    event.update(
        event_type="radius_auth_attempt", success=ok, username=u.username,
        auth_type=r.pick(("eap", "pap")), eap_type=eap, nas_mfa_state="DISABLED", mfa=False,
        mfa_meta={"type": "none"},
        outer={"eap_type": "PEAP", "username": u.username, "error_message": error},
        error_message=error,
        auth_meta={"user_password_enabled": True, "device_cert_enabled": r.chance(0.2),
                   "user_cert_enabled": False, "auth_idp": "JUMPCLOUD",
                   "userid_type": "USERNAME"},
        initiated_by={"type": "user", "username": u.username},
        client_ip=_ip(r), geoip=r.pick(_GEO),
    )  # fmt: skip


_SYS_TYPES = ("login_attempt", "login_attempt", "login_attempt", "user_password_change",
              "system_fde_key_update", "os_minor_upgrade", "remote_session_start",
              "device_command", "user_lockout")  # fmt: skip


def _system_timestamp(c: _Ctx) -> str:
    minutes, suffix = c.rand.pick(_OFFSETS)
    local = c.ts_ns // NS_PER_SECOND + minutes * 60
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(local)) + suffix


def _systems(c: _Ctx, event: Event) -> None:
    r = c.rand
    etype = r.pick(_SYS_TYPES)
    d = r.pick(c.ents.systems)
    u = r.pick(c.ents.users)
    event["event_type"] = etype
    event["success"] = r.chance(0.9)
    event["system"] = {"id": d.id, "hostname": d.hostname, "displayName": d.hostname}
    event["system_timestamp"] = _system_timestamp(c)
    event["initiated_by"] = {"id": u.id, "type": "systemuser", "username": u.username}
    if etype == "login_attempt":
        event["username"] = u.username
        event["client_ip"] = _ip(r)
        event["src_ip"] = _ip(r)
        event["geoip"] = r.pick(_GEO)
        event["message"] = "Accepted publickey" if event["success"] else "Failed password"
        event["process_name"] = "loginwindow" if d.os == "Mac OS X" else "sshd"
        if d.os == "Windows":
            event["windows_meta"] = {"elevated": r.chance(0.2), "logon_type": r.pick((2, 3, 10))}
    else:
        event["resource"] = {"id": d.id, "type": "system"}
        event["changes"] = [{"field": r.pick(("fde_key", "os_version", "password"))}]


def _ldap(c: _Ctx, event: Event) -> None:
    r = c.rand
    u = r.pick(c.ents.users)
    bind = r.chance(0.5)
    ok = r.chance(0.95)
    event.update(
        event_type="ldap_bind" if bind else "ldap_search", success=ok, username=u.username,
        client_ip=_ip(r), connection_id=str(1000 + r.below(90_000)),
        operation_number=0 if bind else 1 + r.below(5),
        operation_type="bind" if bind else "search",
        error_code=0 if ok else 49, error_message="" if ok else "Invalid Credentials",
        initiated_by={"type": "user", "username": u.username},
    )  # fmt: skip
    if bind:
        event.update(dn=f"uid={u.username},ou=Users,o={c.ents.org_id},dc=jumpcloud,dc=com",
                     auth_method="simple", mech="", start_tls=r.chance(0.5),
                     tls_established=True)  # fmt: skip
    else:
        event.update(base=f"ou=Users,o={c.ents.org_id},dc=jumpcloud,dc=com", scope=2, deref=0,
                     filter=f"(uid={u.username})", attr="memberOf",
                     number_of_results=r.below(20))  # fmt: skip


def _profile_list(r: Rand) -> list[dict[str, Any]]:
    # Real MDM results can carry hundreds of installed profiles: tens of KB per event.
    profiles = []
    for i in range(120 + r.below(120)):
        ident = f"com.example.profile.{i}.{r.hex(6)}"
        profiles.append({
            "PayloadIdentifier": ident, "PayloadUUID": r.uuid(upper=True),
            "PayloadDisplayName": f"Profil géré n°{i}", "PayloadVersion": 1 + r.below(3),
            "PayloadRemovalDisallowed": r.chance(0.5), "IsManaged": True, "IsEncrypted": False,
            "PayloadContent": [{"PayloadType": r.pick(("com.apple.wifi.managed",
                                                       "com.apple.security.pkcs1",
                                                       "com.apple.mdm")),
                                "PayloadIdentifier": f"{ident}.payload",
                                "PayloadVersion": 1}],
        })  # fmt: skip
    return profiles


def _mdm(c: _Ctx, event: Event) -> None:
    r = c.rand
    d = r.pick(c.ents.systems)
    etype = r.pick(("mdm_command_result", "mdm_command_result", "device_enrollment",
                    "configuration_file_download"))  # fmt: skip
    event["event_type"] = etype
    event["mdm_type"] = r.pick(("apple", "apple", "windows"))
    event["success"] = r.chance(0.9)
    if r.chance(0.5):
        event["mdm_device_id"] = d.id
        event["mdm_device_manager_id"] = object_id(r)
    else:
        event["device_object_id"] = d.id
        event["device_manager_object_id"] = object_id(r)
    if etype == "mdm_command_result":
        request = r.pick(
            ("ProfileList", "DeviceInformation", "InstallProfile", "InstalledApplicationList")
        )
        event["request_type"] = request
        event["command"] = {"request_type": request}
        event["command_uuid"] = r.uuid()
        event["status"] = r.pick(("Acknowledged", "Acknowledged", "Error", "Idle"))
        event["error_chain"] = None if event["status"] != "Error" else [
            {"error_code": 12021, "error_domain": "MCMDMErrorDomain",
             "localized_description": "Le profil est introuvable."}]  # fmt: skip
        if request == "ProfileList" and r.chance(0.08):
            event["result"] = {"profile_list": _profile_list(r)}
    else:
        event["result"] = {"status": "OK"}
        event["windows_device_uuid"] = r.uuid()


def _password_manager(c: _Ctx, event: Event) -> None:
    r = c.rand
    u = r.pick(c.ents.users)
    event["event_type"] = "passwordmanager_" + r.pick(
        ("item_add", "item_update", "item_reveal", "item_autofill", "folder_member_remove",
         "user_device_pair", "app_unlock", "backup_create"))  # fmt: skip
    event["success"] = True
    event["provider"] = r.pick((None, ""))
    _web(c, event, "user_agent")
    event["initiated_by"] = {"id": u.id, "type": "user", "email": u.email}
    if r.chance(0.4):
        event["changes"] = [{"field": "name", "from": "Wi-Fi Büro", "to": "Wi-Fi Office"}]


def _software(c: _Ctx, event: Event) -> None:
    r = c.rand
    d = r.pick(c.ents.systems)
    name, publisher = r.pick(_SOFTWARE)
    version = f"{1 + r.below(130)}.{r.below(10)}.{r.below(100)}"
    etype = r.pick(("software_add", "software_change", "software_remove", "software_add_request"))
    event["event_type"] = etype
    event["provider"] = None
    event["system"] = {"id": d.id, "type": "system"}
    event["application"] = {"name": name, "version": version,
                            "path": f"/Applications/{name}.app", "publisher": publisher,
                            "uninstall_string": ""}  # fmt: skip
    event["resource"] = {"id": d.id, "type": "system"}
    if etype == "software_change":
        event["changes"] = [{"field": "version", "from": "1.0.0", "to": version}]
    if etype.endswith("_request"):
        event["app_management_source"] = "software_management"


def _notifications(c: _Ctx, event: Event) -> None:
    r = c.rand
    event.update(
        event_type=r.pick(("notification_channel_created", "notification_channel_updated",
                           "notification_channel_deleted")),
        success=True, client_ip=_ip(r), initiated_by=_admin_ref(c),
        name=r.pick(("Alertes sécurité", "On-call email")), type="email",
        channel_object_id=object_id(r), description="", correlation={"id": r.uuid()},
    )  # fmt: skip


def _object_storage(c: _Ctx, event: Event) -> None:
    r = c.rand
    event.update(
        event_type=r.pick(("object_storage_create", "object_storage_get_download_url_request",
                           "object_storage_upload_validation_result", "object_storage_delete")),
        result="success", referrer_object_id=object_id(r), referrer_type="SOFTWARE_APP",
        object_storage_item_object_id=object_id(r),
        object_storage_item_version_object_id=object_id(r),
        object_storage_item_version_name=f"installer-{r.below(99)}.pkg",
        object_storage_item_version_size=r.below(900_000_000),
        object_storage_item_version_sha_256_sum=r.hex(64),
        total_software_item_count=r.below(40), total_space_used=r.below(10**10),
    )  # fmt: skip


def _alerts(c: _Ctx, event: Event) -> None:
    r = c.rand
    event.update(
        event_type=r.pick(
            ("alert_created", "alert_updated", "alert_status_updated", "rule_created")
        ),
        category=r.pick(("identity", "device")), severity=r.pick(("Low", "Medium", "High")),
        success=True, username=r.pick(c.ents.users).username, correlation={"id": r.uuid()},
        resource={"id": object_id(r), "context": "failed logins above threshold",
                  "source_id": object_id(r), "source_type": "rule",
                  "reference_id": object_id(r)},
    )  # fmt: skip


def _saas(c: _Ctx, event: Event) -> None:
    r = c.rand
    aid, aname = r.pick(c.ents.apps)
    event["event_type"] = "saas_management_" + r.pick(
        ("application_discover", "login_event", "application_update", "account_discover")
    )
    _web(c, event)
    del event["useragent"]
    event["initiated_by"] = _user_ref(c)
    event["username"] = r.pick(c.ents.users).username
    event["resource"] = {"application_id": aid, "application_name": aname,
                         "application_category": "Productivity"}  # fmt: skip
    event["detail"] = r.pick(("discovered via browser extension", "status changed"))


def _access(c: _Ctx, event: Event) -> None:
    r = c.rand
    event["event_type"] = r.pick(("access_management_access_request",
                                  "access_management_access_request_approval",
                                  "access_management_association_change"))  # fmt: skip
    event["success"] = True
    _web(c, event, "user_agent")
    event["initiated_by"] = _user_ref(c)
    event["access_request_id"] = object_id(r)
    gid, gname = r.pick(c.ents.groups)
    event["resource"] = {"type": "user_group", "id": gid, "name": gname}
    event["workflow"] = {"type": "access-workflow", "id": object_id(r), "name": "Temp admin",
                         "desc": "Élévation temporaire"}  # fmt: skip


def _reports(c: _Ctx, event: Event) -> None:
    r = c.rand
    event["event_type"] = r.pick(("report_run", "report_export", "report_create", "report_update"))
    event["auth_method"] = "session"
    _web(c, event, "user_agent")
    event["initiated_by"] = _admin_ref(c)
    event["resource"] = {"name": r.pick(("users-to-devices", "os-version")), "id": object_id(r),
                         "description": "", "resources": [], "search_request": {},
                         "configuration": {}}  # fmt: skip


def _asset(c: _Ctx, event: Event) -> None:
    r = c.rand
    event["event_type"] = "asset_management_" + r.pick(
        ("asset_update", "asset_create", "field_setting_create", "general_settings_update")
    )
    _web(c, event)
    del event["useragent"]
    event["initiated_by"] = _admin_ref(c)
    event["username"] = r.pick(c.ents.admins).username
    event["resource"] = {"id": object_id(r), "type": r.pick(("DEVICE", "FIELD_SETTING"))}
    event["detail"] = "asset record changed"


def _workflows(c: _Ctx, event: Event) -> None:
    # No public schema exists for workflows (di-api.md 4.2): a plausible guess, opt-in only.
    r = c.rand
    event["event_type"] = r.pick(("workflow_run", "workflow_create", "workflow_update"))
    event["success"] = r.chance(0.9)
    event["initiated_by"] = _admin_ref(c)
    event["resource"] = {"id": object_id(r), "type": "workflow", "name": "Onboarding"}


TEMPLATES: dict[str, Callable[[_Ctx, Event], None]] = {
    "access_management": _access,
    "alerts": _alerts,
    "asset_management": _asset,
    "directory": _directory,
    "ldap": _ldap,
    "mdm": _mdm,
    "notifications": _notifications,
    "object_storage": _object_storage,
    "password_manager": _password_manager,
    "radius": _radius,
    "reports": _reports,
    "saas_app_management": _saas,
    "software": _software,
    "sso": _sso,
    "systems": _systems,
    "workflows": _workflows,
}

# Relative volume per service; timestamp precision digits each tends to use.
SERVICE_WEIGHTS: dict[str, float] = {
    "directory": 22, "sso": 14, "systems": 14, "radius": 8, "ldap": 9, "mdm": 6, "software": 7,
    "password_manager": 4, "notifications": 1, "object_storage": 1.5, "alerts": 2,
    "saas_app_management": 3, "access_management": 1.5, "reports": 1, "asset_management": 1,
    "workflows": 1,
}  # fmt: skip
SERVICE_PRECISION: dict[str, tuple[int, ...]] = {
    "radius": (0,), "directory": (3,), "sso": (9, 9, 8), "mdm": (9,), "systems": (3, 9),
    "ldap": (3,), "software": (3, 6),
}  # fmt: skip
DEFAULT_PRECISION: tuple[int, ...] = (3,)


def event_id(rand: Rand, service: str) -> str:
    """The event's own ``id``: 24-hex, upper-case UUIDv3 (radius) or lower-case UUID."""
    if service == "radius":
        return rand.uuid(upper=True, version=3)
    if rand.chance(0.03):
        return rand.uuid()
    return object_id(rand)


def render_event(seed: int, ents: OrgEntities, index: int, ts_ns: int, service: str) -> Event:
    """The event a DI query returns for generation ``index`` of the org (pure, deterministic)."""
    rand = Rand(f"{seed}:{ents.org_id}:{index}".encode())
    event: Event = {
        "@version": "1",
        "id": event_id(rand, service),
        "service": service,
        "event_type": "",
        "timestamp": format_timestamp_ns(ts_ns),
        "organization": ents.org_id,
    }
    TEMPLATES[service](_Ctx(rand, ents, ts_ns), event)
    return event


def encode_event(event: Event) -> bytes:
    """Compact UTF-8 JSON, as the API sends it."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
