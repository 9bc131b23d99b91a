"""Connection settings and the official ``openai`` async client built from them.

The API key is read from an environment variable at the moment the client is built; it is never a field of any
settings object, never logged, and :func:`redact` removes it (and anything shaped like a key) from error texts
before they are stored or logged.

Retries: the SDK's own retry loop is used (``max_retries``). It retries 408/409/429/5xx, timeouts and dropped
connections with exponential backoff and jitter, honours ``Retry-After``/``retry-after-ms``, and reuses one
idempotency key across the retries of a request; a second, home-made retry layer would only duplicate that. The
engine adds the two things the SDK cannot know about: a 200 answer whose body is not a chat completion (retried
with the same backoff) and an answer that breaks the expected format (a new, paid and stored attempt).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["DEFAULT_API_KEY_ENV", "ClientSettings", "make_async_client", "read_api_key", "redact", "redact_url"]

logger = logging.getLogger(__name__)

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"

_KEY_SHAPED = re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_\-*]{6,}")
_known_secrets: set[str] = set()


@dataclass(frozen=True)
class ClientSettings:
    """How to reach an OpenAI-compatible endpoint.

    Args:
        base_url: the API root, e.g. ``http://localhost:8000/v1`` (``None``: the SDK's default, OpenAI).
        api_key_env: the name of the environment variable holding the key (never the key itself).
        timeout: seconds per HTTP request before it is abandoned (and retried).
        max_retries: retries per request for 408/409/429/5xx, timeouts, dropped connections, malformed bodies.
    """

    base_url: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    timeout: float = 120.0
    max_retries: int = 6

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env or ""):
            raise ValueError(
                f"api_key_env must be the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                f"got {redact(self.api_key_env)!r}"
            )


def read_api_key(api_key_env: str) -> str:
    """The key in ``$api_key_env``; raises naming the variable (not its value) when it is unset or empty."""
    key = os.environ.get(api_key_env, "")
    if not key.strip():
        raise RuntimeError(
            f"The environment variable {api_key_env} is not set or empty. Export the API key there "
            f"(any non-empty string for a local server that ignores keys), or name another variable with "
            f"--api-key-env."
        )
    _known_secrets.add(key)
    return key


def redact(text: str) -> str:
    """``text`` with every API key this process has read, and every key-shaped token, replaced by ``***``."""
    for secret in _known_secrets:
        text = text.replace(secret, "***")
    return _KEY_SHAPED.sub(r"\1-***", text)


def redact_url(url: str | None) -> str | None:
    """A URL without user info, query or fragment, fit for logs and cards."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def make_async_client(settings: ClientSettings) -> AsyncOpenAI:
    """An ``openai.AsyncOpenAI`` for these settings, with the SDK's retries and the per-request timeout."""
    from openai import AsyncOpenAI

    return AsyncOpenAI(
        api_key=read_api_key(settings.api_key_env),
        base_url=settings.base_url,
        timeout=settings.timeout,
        max_retries=settings.max_retries,
    )
