"""The client's TLS context: made once for the certificate settings in force, early in a
thread when asked, and a bad setting still fails where it is used."""

from __future__ import annotations

import shutil
import ssl
import threading
from pathlib import Path
from typing import Any

import certifi
import pytest

from connectors.icompleat import tls
from sync.foundation.errors import ConfigError


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """No context made yet; every context made is counted, with its arguments."""
    made: list[dict[str, Any]] = []
    real = ssl.create_default_context

    def counting(**kwargs: Any) -> ssl.SSLContext:
        made.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(tls, "_contexts", {})
    monkeypatch.setattr(ssl, "create_default_context", counting)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return made


def test_made_once_and_verifying(fresh: list[dict[str, Any]]) -> None:
    first = tls.tls_context()
    assert tls.tls_context() is first
    assert fresh == [{"cafile": certifi.where()}]
    assert first.verify_mode == ssl.CERT_REQUIRED
    assert first.check_hostname
    assert first.cert_store_stats()["x509_ca"] > 10


def test_the_environment_s_authorities_win(fresh: list[dict[str, Any]], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """SSL_CERT_FILE, then SSL_CERT_DIR, as httpx reads them; each setting its own context."""
    default = tls.tls_context()
    bundle = tmp_path / "ca.pem"
    shutil.copy(certifi.where(), bundle)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    own = tls.tls_context()
    assert own is not default
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    assert tls.tls_context() not in (default, own)
    assert fresh[1:] == [{"cafile": str(bundle)}, {"capath": str(tmp_path)}]


def test_prepared_in_a_thread_then_shared(fresh: list[dict[str, Any]]) -> None:
    tls.prepare()
    threads = [t for t in threading.enumerate() if t.name == "icsync-tls"]
    contexts = [tls.tls_context() for _ in range(3)]  # waits for the thread's, never a second
    for thread in threads:
        thread.join(5)
    assert len(fresh) == 1
    assert all(c is contexts[0] for c in contexts)


def test_a_bad_setting_fails_where_it_is_used_not_in_the_thread(
        fresh: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle that is missing or holds no certificate is a ConfigError naming the setting
    and the file, raised where the context is used; the early thread stays quiet."""
    missing = tmp_path / "missing.pem"
    monkeypatch.setenv("SSL_CERT_FILE", str(missing))
    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    tls.prepare()
    for thread in [t for t in threading.enumerate() if t.name == "icsync-tls"]:
        thread.join(5)
    assert errors == []
    with pytest.raises(ConfigError, match="No such file") as refused:
        tls.tls_context()
    assert refused.value.key == "SSL_CERT_FILE"
    assert str(missing) in str(refused.value)
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "garbage.pem"))
    with pytest.raises(ConfigError, match=r"garbage\.pem"):
        tls.tls_context()
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.setenv("SSL_CERT_DIR", str(missing))
    assert tls.tls_context().verify_mode == ssl.CERT_REQUIRED  # as ssl: a folder is searched
    assert fresh[-1] == {"capath": str(missing)}  # at each handshake, not at load
