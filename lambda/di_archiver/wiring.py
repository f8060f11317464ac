"""The composition root: settings -> adapters -> engine, shared by the Lambda handler and CLI.

Only this module decides which concrete adapters a run uses (local directory and file, or S3 and
SSM), so the handler and every CLI command archive in exactly the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from di_archiver.application.runtime import Closeable, Runtime
from di_archiver.errors import SettingsError
from di_archiver.settings import ArchiverSettings, Duty

if TYPE_CHECKING:
    import httpx
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_ssm import SSMClient

    from di_archiver.adapters.di_auth import Credentials
    from di_archiver.application.fanout import OrgQueue
    from di_archiver.domain.engine import ArchiveEngine, RunObserver
    from di_archiver.domain.ports import (
        ArchiveStore,
        CheckpointStore,
        EventSource,
        HeadPublisher,
        SignatureVerifier,
        Signer,
    )


def build_store(
    settings: ArchiverSettings,
    *,
    s3_client: S3Client | None = None,
    endpoint_url: str | None = None,
) -> ArchiveStore:
    """The archive store the settings name: a local directory or the S3 bucket."""
    if settings.archive_dir is not None:
        from di_archiver.adapters.local_store import LocalArchiveStore  # noqa: PLC0415

        return LocalArchiveStore(settings.archive_dir)
    from di_archiver.adapters.s3_store import S3ArchiveStore  # noqa: PLC0415

    assert settings.archive_bucket is not None  # the settings model guarantees one of the two
    return S3ArchiveStore(
        settings.archive_bucket,
        s3_client=s3_client,
        kms_key_id=settings.kms_key_id,
        endpoint_url=endpoint_url,
    )


def build_checkpoints(
    settings: ArchiverSettings,
    *,
    ssm_client: SSMClient | None = None,
    endpoint_url: str | None = None,
) -> CheckpointStore:
    """The checkpoint store the settings name: a local JSON file or SSM parameters."""
    if settings.checkpoint_file is not None:
        from di_archiver.adapters.local_store import FileCheckpointStore  # noqa: PLC0415

        return FileCheckpointStore(Path(settings.checkpoint_file))
    from di_archiver.adapters.ssm_checkpoint import SsmCheckpointStore  # noqa: PLC0415

    return SsmCheckpointStore(
        settings.checkpoint_parameter_prefix, ssm_client=ssm_client, endpoint_url=endpoint_url
    )


def load_credentials(
    settings: ArchiverSettings,
    *,
    secrets_client: SecretsManagerClient | None = None,
    secret: Mapping[str, str] | None = None,
    endpoint_url: str | None = None,
) -> Credentials:
    """Credentials from ``secret`` (CLI env) or the Secrets Manager secret the settings name."""
    from di_archiver.adapters.di_auth import credentials_from_secret  # noqa: PLC0415

    if secret is not None:
        return credentials_from_secret(secret, settings.auth_kind, source="environment")
    if not settings.secret_id:
        raise SettingsError(
            "no JumpCloud credential: set DI_ARCHIVER_SECRET_ID to the Secrets Manager secret"
        )
    from di_archiver.adapters.secrets import SecretProvider  # noqa: PLC0415

    document = SecretProvider(
        settings.secret_id, client=secrets_client, endpoint_url=endpoint_url
    ).get()
    return credentials_from_secret(document, settings.auth_kind, source=settings.secret_id)


def build_runtime(
    settings: ArchiverSettings,
    *,
    s3_client: S3Client | None = None,
    ssm_client: SSMClient | None = None,
    secrets_client: SecretsManagerClient | None = None,
    http: httpx.Client | None = None,
    credentials: Credentials | None = None,
    secret: Mapping[str, str] | None = None,
    source: EventSource | None = None,
    clock: Callable[[], int] | None = None,
    observer: RunObserver | None = None,
    endpoint_url: str | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> Runtime:
    """Wire one run. ``source`` replaces the DI client (status needs none, tests may fake it)."""
    from di_archiver.domain.engine import ArchiveEngine, EngineConfig  # noqa: PLC0415

    closeables: list[Closeable] = []
    reads_di = settings.duty in (Duty.ALL, Duty.ARCHIVE)
    if source is None and not reads_di:
        from di_archiver.application.status import NoSource  # noqa: PLC0415

        # The seal and verify roles have no DI credential and must never reach DI.
        source = NoSource()
    if source is None:
        from di_archiver.adapters.di_client import DIClient  # noqa: PLC0415
        from di_archiver.adapters.rate_limit import RateLimiter  # noqa: PLC0415

        if credentials is None:
            credentials = load_credentials(
                settings, secrets_client=secrets_client, secret=secret, endpoint_url=endpoint_url
            )
        options = dict(client_options or {})
        # One limiter per client and one client per run: every worker shares the key's budget.
        options.setdefault(
            "rate_limiter",
            RateLimiter(
                rate_per_s=settings.rate_limit_per_second,
                max_in_flight=settings.max_requests_in_flight,
            ),
        )
        client = DIClient(
            base_url=settings.di_base_url,
            credentials=credentials,
            token_url=settings.oauth_token_url,
            page_limit=settings.page_limit,
            services=list(settings.services),
            http=http,
            **options,
        )
        closeables.append(client)
        source = client
    store = build_store(settings, s3_client=s3_client, endpoint_url=endpoint_url)
    checkpoints = build_checkpoints(settings, ssm_client=ssm_client, endpoint_url=endpoint_url)
    extra: dict[str, Any] = {} if clock is None else {"clock": clock}
    engine = ArchiveEngine(
        source=source,
        store=store,
        checkpoints=checkpoints,
        config=EngineConfig.from_settings(settings),
        observer=observer,
        **extra,
    )
    return Runtime(
        engine=engine,
        source=source,
        store=store,
        checkpoints=checkpoints,
        closeables=closeables,
        signer=build_signer(settings, endpoint_url=endpoint_url),
        publishers=build_publishers(settings, endpoint_url=endpoint_url),
        reads_di=reads_di,
    )


def build_signer(settings: ArchiverSettings, *, endpoint_url: str | None = None) -> Signer | None:
    """The manifest signer the settings name (KMS key or local key file), for sealing roles."""
    if settings.duty not in (Duty.ALL, Duty.SEAL):
        return None
    if settings.signing_key_file is not None:
        from di_archiver.adapters.signing import LocalKeySigner  # noqa: PLC0415

        return LocalKeySigner.from_pem_file(settings.signing_key_file)
    if settings.signing_key_id is not None:
        from di_archiver.adapters.signing import KmsSigner  # noqa: PLC0415

        return KmsSigner(settings.signing_key_id, endpoint_url=endpoint_url)
    return None


def build_publishers(
    settings: ArchiverSettings, *, endpoint_url: str | None = None
) -> list[HeadPublisher]:
    """Where signed heads go outside the bucket: the EventBridge bus, when one is set."""
    if settings.head_event_bus is None or settings.duty not in (Duty.ALL, Duty.SEAL):
        return []
    from di_archiver.adapters.heads import EventBridgeHeadPublisher  # noqa: PLC0415

    return [EventBridgeHeadPublisher(settings.head_event_bus, endpoint_url=endpoint_url)]


def build_verifier(
    settings: ArchiverSettings | None,
    *,
    public_key_file: str | None = None,
    kms_key_id: str | None = None,
    endpoint_url: str | None = None,
) -> SignatureVerifier | None:
    """The public key that checks certificates: a PEM file, else the KMS key's public half."""
    from di_archiver.adapters.signing import PublicKeyVerifier, kms_public_key  # noqa: PLC0415

    if public_key_file is not None:
        return PublicKeyVerifier.from_pem_file(public_key_file)
    key_id = kms_key_id or (settings.signing_key_id if settings else None)
    if key_id is not None:
        return kms_public_key(key_id, endpoint_url=endpoint_url)
    if settings is not None and settings.signing_key_file is not None:
        return PublicKeyVerifier.from_pem_file(settings.signing_key_file)
    return None


def build_engine(
    settings: ArchiverSettings,
    *,
    s3_client: S3Client | None = None,
    ssm_client: SSMClient | None = None,
    secrets_client: SecretsManagerClient | None = None,
    http: httpx.Client | None = None,
    credentials: Credentials | None = None,
    clock: Callable[[], int] | None = None,
    observer: RunObserver | None = None,
) -> tuple[ArchiveEngine, list[Closeable]]:
    """``(engine, closeables)`` for ``settings``: local dir/file when set, S3/SSM otherwise."""
    runtime = build_runtime(
        settings,
        s3_client=s3_client,
        ssm_client=ssm_client,
        secrets_client=secrets_client,
        http=http,
        credentials=credentials,
        clock=clock,
        observer=observer,
    )
    return runtime.engine, runtime.closeables


def store_for_location(
    archive: str, *, endpoint_url: str | None = None, default_prefix: str = "di"
) -> tuple[ArchiveStore, str]:
    """``(store, prefix)`` for ``s3://BUCKET/PREFIX`` or a local directory (prefix ``di``)."""
    if archive.startswith("s3://"):
        from di_archiver.adapters.s3_store import S3ArchiveStore  # noqa: PLC0415

        bucket, _, prefix = archive.removeprefix("s3://").partition("/")
        if not bucket:
            raise SettingsError("--archive s3://BUCKET/PREFIX needs a bucket name")
        return S3ArchiveStore(bucket, endpoint_url=endpoint_url), prefix.strip(
            "/"
        ) or default_prefix
    from di_archiver.adapters.local_store import LocalArchiveStore  # noqa: PLC0415

    return LocalArchiveStore(archive), default_prefix


__all__ = [
    "Closeable",
    "Runtime",
    "build_checkpoints",
    "build_engine",
    "build_runtime",
    "build_store",
    "load_credentials",
    "store_for_location",
]


def build_org_queue(
    settings: ArchiverSettings, *, sqs_client: Any = None, endpoint_url: str | None = None
) -> OrgQueue | None:
    """The fan-out work queue the settings name, or ``None`` for a single-function deployment."""
    if settings.org_queue_url is None:
        return None
    from di_archiver.adapters.sqs_queue import SqsOrgQueue  # noqa: PLC0415

    return SqsOrgQueue(settings.org_queue_url, sqs_client=sqs_client, endpoint_url=endpoint_url)
