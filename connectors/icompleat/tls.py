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

_lock = threading.Lock()
_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def _settings() -> tuple[str | None, str | None]:
    return os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None


def tls_context() -> ssl.SSLContext:
    """The verifying client context for the certificate settings in force (made once; a
    caller that asks while :func:`prepare`'s thread makes it waits for that one). A file or
    folder that cannot be loaded raises here (OSError, ssl.SSLError), as httpx would."""
    settings = _settings()
    with _lock:
        context = _contexts.get(settings)
        if context is None:
            cafile, capath = settings
            if cafile is not None:
                context = ssl.create_default_context(cafile=cafile)
            elif capath is not None:
                context = ssl.create_default_context(capath=capath)
            else:
                context = ssl.create_default_context(cafile=certifi.where())
            _contexts[settings] = context
    return context


def _make_quietly() -> None:
    with contextlib.suppress(OSError, ValueError, ssl.SSLError):  # raised again when used
        tls_context()


def prepare() -> None:
    """Start making :func:`tls_context` in a thread; a failure is left for its first use."""
    threading.Thread(target=_make_quietly, name="icsync-tls", daemon=True).start()
