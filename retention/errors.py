"""One error root for the library; every error names the field, file or line it is about."""

from datetime import datetime, timedelta


class RetentionError(Exception):
    """Base of every error the retention library raises on purpose."""


class InvalidInput(RetentionError):
    """Input that failed validation; the message names the field."""


class RulebookError(RetentionError):
    """A rule file that cannot be loaded or compiled; the message names file and line."""


class CustomerNotFound(RetentionError):
    """A customer id that is not in the database."""


class DeliveryFailed(RetentionError):
    """A provider did not take a message; `permanent` says whether a retry could succeed.
    The message names the provider and its answer, never a credential."""

    permanent = True

    def __init__(self, message: str, retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(DeliveryFailed):
    """429, 5xx or no answer: retry later (after `retry_after` when the provider said)."""

    permanent = False


class InvalidRecipient(DeliveryFailed):
    """The address or number cannot receive the message on this channel."""


class ProviderRejected(DeliveryFailed):
    """Any other 4xx: bad credentials, a malformed request; the same request would fail again."""


class Suppressed(DeliveryFailed):
    """The customer (or the address) is on the suppression list for this channel."""


class HeldBack(RetentionError):
    """A person's frequency cap or quiet hours keep their message back until `until`."""

    def __init__(self, why: str, until: datetime) -> None:
        super().__init__(why)
        self.until = until


class JourneyOperationError(RetentionError):
    """A journey operation Temporal refused or could not carry out; the message says why."""


class TemporalUnreachable(JourneyOperationError):
    """No Temporal server answers at the configured address, or it refused the connection."""
