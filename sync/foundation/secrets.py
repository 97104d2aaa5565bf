"""Secrets: where they come from, and masking them everywhere they could leak.

A :class:`Secret` remembers its origin (a file, a systemd credential, an environment variable,
the configuration file) so that errors can name WHERE a rejected credential came from without
ever showing its value. ``repr`` and ``str`` are masked; only :meth:`Secret.reveal` gives the value.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sync.foundation.errors import ConfigError

MASK = "**********"


@dataclass(frozen=True)
class Secret:
    """A secret value with its origin; never printed."""

    _value: str = field(repr=False)
    origin: str = "configuration"

    def reveal(self) -> str:
        """The value, for the one place that must send it (a header, a DB driver)."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK}, origin={self.origin!r})"

    def __str__(self) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)


def read_secret_file(path: Path, *, key: str) -> str:
    """The stripped first line of a secret file; ConfigError naming ``key`` if unreadable."""
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path}: {exc.strerror}", key=key) from None
    except UnicodeDecodeError:
        raise ConfigError(f"secret file {path} is not UTF-8 text", key=key) from None
    value = content.strip()
    if not value:
        raise ConfigError(f"secret file {path} is empty", key=key)
    return value


def load_secret(
    *, key: str, inline: str | None, file: Path | None, credential: str, env: str,
) -> Secret | None:
    """Find a secret in order: inline value, ``file``, $CREDENTIALS_DIRECTORY/credential, ``env``.

    ``key`` is the configuration key reported in errors; the value is never reported.
    """
    if inline:
        return Secret(inline, origin=f"configuration key {key}")
    if file is not None:
        return Secret(read_secret_file(file, key=f"{key}_file"), origin=f"file {file}")
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / credential).is_file():
        path = Path(cred_dir) / credential
        return Secret(read_secret_file(path, key=key), origin=f"systemd credential {credential}")
    if os.environ.get(env):
        return Secret(os.environ[env], origin=f"environment variable {env}")
    return None


class Redactor:
    """Replaces every known secret value in a text with the mask; used by logs and errors."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values: set[str] = {s for s in secrets if s and len(s) >= 4}

    def add(self, value: str) -> None:
        """Mask ``value`` from now on (ignored when shorter than 4 characters)."""
        if value and len(value) >= 4:
            self._values.add(value)

    def __call__(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, MASK)
        return text


REDACTOR = Redactor()
