"""What a call to a language model provider fails with.

The messages are safe to show a client (the vendor's own text goes to the log only); the web
layer (``gateway.errors``) answers each class with its HTTP status.
"""

from __future__ import annotations


class ProviderError(Exception):
    """A language model provider could not be used for this request."""

    default_message = "The language model provider failed."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self)


class ProviderNotConfigured(ProviderError):
    """The request names a provider that is not configured, or none is."""

    default_message = "No language model provider is configured."


class UpstreamError(ProviderError):
    """The provider answered with an error, could not be reached, or sent an unusable answer."""

    default_message = "The language model provider returned an error."


class UpstreamRateLimited(UpstreamError):
    """The provider answered 429; ``retry_after`` is its ``Retry-After`` in seconds, if given."""

    default_message = "The language model provider is rate limiting requests."

    def __init__(self, message: str | None = None, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamTimeout(ProviderError):
    """The provider did not answer within the configured timeout."""

    default_message = "The language model provider did not answer in time."
