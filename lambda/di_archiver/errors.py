"""One exception root for everything di-archiver raises on purpose.

Adapters wrap library errors (``botocore``, ``httpx``) in these with ``raise ... from exc``.
Messages say what to fix and never contain a credential.
"""

from di_archiver.redaction import redact, server_text


class ArchiverError(Exception):
    """Root of every error di-archiver raises deliberately.

    Its text passes through :func:`~di_archiver.redaction.redact` whenever it is printed, so
    a credential quoted by a server or a library never reaches an output, log or traceback.
    """

    def __str__(self) -> str:
        return redact(super().__str__())


class SettingsError(ArchiverError):
    """Configuration is missing or invalid; the message names the setting and the fix."""


class DIApiError(ArchiverError):
    """The Directory Insights API answered in a way we cannot proceed from."""

    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None):
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class DIBadRequestError(DIApiError):
    """HTTP 400: the query was rejected (permanent)."""


class DIAuthenticationError(DIApiError):
    """HTTP 401 or a refused OAuth token request: the credential is wrong or revoked."""


class DIPaymentRequiredError(DIApiError):
    """HTTP 402: Directory Insights is not enabled for the organisation."""


class DIForbiddenError(DIApiError):
    """HTTP 403: the credential lacks an admin role for the API."""


class DITransientError(DIApiError):
    """429/5xx/timeouts/truncated bodies that outlasted every retry."""


class DIResponseError(DIApiError):
    """A 200 answer whose body or headers are malformed (non-JSON, wrong shape)."""


class StoreError(ArchiverError):
    """The archive store failed to read or write an object."""


class QueueError(ArchiverError):
    """The org work queue (SQS fan-out) could not take a message."""


class CheckpointError(ArchiverError):
    """A stored checkpoint is unreadable, invalid, or would move backwards."""


class SecretError(ArchiverError):
    """The credential secret is missing, empty, or not in the documented shape."""


class BucketTooLargeError(ArchiverError):
    """One time bucket holds more events than the configured bound; narrow the bucket width."""


class IntegrityError(ArchiverError):
    """Verification found missing, extra or altered archive content."""


class SigningError(ArchiverError):
    """A day certificate could not be signed, or a signing/public key is unusable."""


class QueryError(ArchiverError):
    """A local query could not be planned or run."""


_FAILURE_MESSAGE_LIMIT = 300


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """``(type name, message)`` for a per-org failure in a report: one line, bounded.

    Our own errors are secret-free by contract and keep their message as is; any other
    exception is prefixed with its type so e.g. a corrupt line reads as ``JSONDecodeError: ...``.
    """
    kind = type(exc).__name__
    # Scrubbed before the cut (a cut first could leave most of a key); a library's message
    # may quote what it was given.
    text = server_text(str(exc), _FAILURE_MESSAGE_LIMIT) or "(no message)"
    return kind, text if isinstance(exc, ArchiverError) else f"{kind}: {text}"


class UnexpectedError(ArchiverError):
    """An exception that is not ours (a bug or a library surprise), recorded for one org."""
