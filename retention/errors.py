"""One error root for the library; every error names the field, file or line it is about."""


class RetentionError(Exception):
    """Base of every error the retention library raises on purpose."""


class InvalidInput(RetentionError):
    """Input that failed validation; the message names the field."""


class RulebookError(RetentionError):
    """A rule file that cannot be loaded or compiled; the message names file and line."""


class CustomerNotFound(RetentionError):
    """A customer id that is not in the database."""
