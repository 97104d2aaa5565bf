"""The TLS context of the iCompleat client: made once per process, and early.

Loading the certificate authorities takes 30-50 ms (OpenSSL parses a few hundred of them), and
each runtime's transport loaded its own. :func:`tls_context` makes the context once for the
certificate settings in force, as httpx would (the file named by ``SSL_CERT_FILE``, else the
folder named by ``SSL_CERT_DIR``, else certifi's bundle). :func:`prepare` starts making it in a
thread, for a command that will call iCompleat: OpenSSL parses without holding the interpreter
lock, so it is done on the other core while the command is still importing.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import threading

import certifi

from sync.foundation.errors import ConfigError

_lock = threading.Lock()
_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def _settings() -> tuple[str | None, str | None]:
    return os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None


def tls_context() -> ssl.SSLContext:
    """The verifying client context for the certificate settings in force (made once; a
    caller that asks while :func:`prepare`'s thread makes it waits for that one). ConfigError,
    naming the setting, when its file or folder cannot be loaded."""
    settings = _settings()
    with _lock:
        context = _contexts.get(settings)
        if context is None:
            context = _contexts[settings] = _load(*settings)
    return context


def _load(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    try:
        if cafile is not None:
            return ssl.create_default_context(cafile=cafile)
        if capath is not None:
            return ssl.create_default_context(capath=capath)
        return ssl.create_default_context(cafile=certifi.where())
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
        if cafile is not None:
            name, where, fix = "SSL_CERT_FILE", cafile, "a readable PEM bundle"
        elif capath is not None:
            name, where, fix = "SSL_CERT_DIR", capath, "a readable folder of PEM certificates"
        else:
            raise ConfigError(f"certifi's bundle {certifi.where()!r} cannot be loaded "
                              f"({reason}): reinstall icsync, or set SSL_CERT_FILE") from None
        raise ConfigError(f"the certificate authorities in {where!r} cannot be loaded "
                          f"({reason}): point {name} at {fix}, or unset it to use certifi's "
                          "bundle", key=name) from None


def _make_quietly() -> None:
    with contextlib.suppress(ConfigError):  # raised again where the context is used
        tls_context()


def prepare() -> None:
    """Start making :func:`tls_context` in a thread; a failure is left for its first use."""
    threading.Thread(target=_make_quietly, name="icsync-tls", daemon=True).start()
