"""Small rules of the hardening: segments, route paths, private files, CSV cells, log repeats."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
from decimal import Decimal
from pathlib import Path

import pytest
import structlog

from connectors.files import csv_document, neutralise_formula
from connectors.icompleat.routes import ROUTES, Route, build_routes, encode_segment
from sync.daemon.service import bridge_stdlib_logging
from sync.foundation.config import route_path
from sync.foundation.errors import ConfigError
from sync.foundation.files import private_dir, private_file, write_private
from sync.foundation.logs import RepeatLimiter, configure
from sync.foundation.secrets import REDACTOR


@pytest.mark.parametrize("code", [".", "..", "...", "a.b", "a/b", "%2E", " ", "é", "NUL"])
def test_each_code_is_exactly_one_segment(code: str) -> None:
    """Every code renders as one segment that the route matcher decodes back to the code."""
    route = ROUTES["accountcodes.edit"]
    path = route.render(tenantId="t", companyId="c", code=code)
    assert path.count("/") == route.path.count("/")
    assert route.match(path) == {"tenantId": "t", "companyId": "c", "code": code}


def test_unsendable_segments_are_refused() -> None:
    """An empty value or a lone surrogate cannot become a segment: ValueError, not a bad call."""
    with pytest.raises(ValueError, match="empty"):
        encode_segment("")
    with pytest.raises(ValueError, match="surrogate"):
        encode_segment("\ud800")


def test_route_overrides_stay_on_base_urls_origin() -> None:
    """Paths pass; a URL of the same origin becomes its path; any other origin is refused."""
    base = "https://api.example"
    assert route_path("/api/x/{tenantId}", base, "k") == "/api/x/{tenantId}"
    assert route_path("https://api.example/api/x", base, "k") == "/api/x"
    for bad in ("http://api.example/x", "https://evil.example/x", "//evil.example/x",
                "https://api.example:8443/x", "api/x", "/x?y=1", ""):
        with pytest.raises(ValueError, match="k"):
            route_path(bad, base, "k")


def test_unknown_route_placeholder_names_the_key() -> None:
    """An override using a placeholder the operation does not fill fails naming its path key."""
    with pytest.raises(ConfigError) as caught:
        build_routes({"tenant": {"path": "/api/tenant/{tenantId}/{nope}"}})
    assert caught.value.key == "icompleat.routes.tenant.path"
    assert isinstance(ROUTES["tenant"], Route)


def test_private_files_whatever_the_umask(tmp_path: Path) -> None:
    """Folders 0700 and files 0600 under umask 022, and a readable file is tightened."""
    old = os.umask(0o022)
    try:
        folder = private_dir(tmp_path / "a" / "b")
        made = private_file(folder / "state.db")
        write_private(folder / "secret", b"x\n")
        loose = folder / "loose"
        loose.write_text("x")
        private_file(loose)
    finally:
        os.umask(old)
    modes = [stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "a", folder)]
    assert modes == [0o700, 0o700]
    for path in (made, folder / "secret", loose):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_formula_cells_are_neutralised_unless_switched_off() -> None:
    """=, +, -, @, tab and CR get a leading quote; numbers and text stay; the switch writes raw."""
    for lead in ("=", "+", "-", "@", "\t", "\r"):
        assert neutralise_formula(f"{lead}1+1") == f"'{lead}1+1"
    assert neutralise_formula("Office paper") == "Office paper"
    assert neutralise_formula(Decimal("-12.50")) == Decimal("-12.50")
    header = {"title": "=cmd|' /C calc'!A0"}
    assert b"'=cmd" in csv_document("J1", "now", header, [])
    assert b"'=cmd" not in csv_document("J1", "now", header, [], neutralise=False)


def test_repeated_identical_errors_are_counted_not_written() -> None:
    """Within the interval a repeat is dropped; the next line written carries the count."""
    now = [0.0]
    limiter = RepeatLimiter(interval=10.0, clock=lambda: now[0])
    event = {"event": "accept_failed", "error": "EMFILE"}
    assert limiter(None, "error", dict(event)) == event
    for _ in range(1000):
        with pytest.raises(structlog.DropEvent):
            limiter(None, "error", dict(event))
    assert limiter(None, "info", {"event": "x"}) == {"event": "x"}  # info is never limited
    now[0] = 11.0
    assert limiter(None, "error", dict(event))["repeated"] == 1000


def test_different_exceptions_are_not_repeats() -> None:
    """Two crashes of one job with different errors are both written; the same one is not."""
    limiter = RepeatLimiter(interval=10.0, clock=lambda: 0.0)
    first = {"event": "job_crashed", "exc_info": (ValueError, ValueError("a"), None)}
    other = {"event": "job_crashed", "exc_info": (ValueError, ValueError("b"), None)}
    assert limiter(None, "error", dict(first))
    assert limiter(None, "error", dict(other))
    with pytest.raises(structlog.DropEvent):
        limiter(None, "error", {"event": "job_crashed",
                                "exc_info": (ValueError, ValueError("a"), object())})


def test_stdlib_exceptions_reach_the_log_with_type_message_traceback() -> None:
    """uvicorn's and APScheduler's exception records keep type, message and traceback, masked."""
    out = io.StringIO()
    configure("json", "info", stream=out)
    bridge_stdlib_logging("info")
    REDACTOR.add("hardening-canary-secret-1234")
    try:
        raise RuntimeError("boom with hardening-canary-secret-1234")
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["error_type"] == "RuntimeError"
    assert "boom" in line["error"]
    assert "Traceback" in line["exception"]
    assert "hardening-canary-secret-1234" not in out.getvalue()
