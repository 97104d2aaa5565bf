"""Logs: secrets masked, and a replaced standard error never breaks logging."""

import asyncio
import io
import json
import subprocess
import sys

import pytest

from sync.foundation.logs import bound, configure, get_logger
from sync.foundation.secrets import REDACTOR


def test_lines_follow_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Configured while one stderr is installed, logging writes to whichever is current later."""
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure("json", "info")
    first.close()  # what a finished test's capture does
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    get_logger("t").info("still_logging")
    assert "still_logging" in second.getvalue()


def test_registered_secret_is_masked_in_every_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registered secret is masked in the event and in bound values, as JSON."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    REDACTOR.add("log-canary-secret-42")
    configure("json", "info")
    get_logger("t").warning("calling with log-canary-secret-42", url="x?k=log-canary-secret-42")
    assert "log-canary-secret-42" not in out.getvalue()
    assert "**********" in out.getvalue()


def test_bound_values_reach_every_line_of_their_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values bound with ``bound`` are on each line of their context, in the threads it
    starts too; a line's own value wins; leaving the context unbinds them. Secrets in bound
    values are masked like any other."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    REDACTOR.add("bound-canary-secret-7")
    configure("json", "info")
    log = get_logger("t")

    async def job() -> None:
        with bound(company="acme", run_id="r1"):
            with bound(kind="suppliers", note="bound-canary-secret-7"):
                await asyncio.to_thread(log.info, "in_thread")
                log.info("own_value", kind="currencies")
            log.info("outer")
        log.info("after")

    asyncio.run(job())
    lines = {line["event"]: line for line in map(json.loads, out.getvalue().splitlines())}
    assert lines["in_thread"]["company"] == "acme"
    assert lines["in_thread"]["kind"] == "suppliers"
    assert lines["own_value"]["kind"] == "currencies"
    assert lines["own_value"]["run_id"] == "r1"
    assert "kind" not in lines["outer"]
    assert lines["outer"]["company"] == "acme"
    assert "company" not in lines["after"]
    assert "bound-canary-secret-7" not in out.getvalue()


def test_a_line_below_the_level_does_not_load_structlog() -> None:
    """A command that logs nothing at its level never loads structlog (a tenth of a second of
    its start), and the first line at the level still gets written, with its bound values."""
    probe = (
        "import sys\n"
        "from sync.foundation.logs import bound, configure, get_logger\n"
        "configure('json', 'warning', stream=sys.stdout)\n"
        "log = get_logger('t')\n"
        "with bound(company='acme'):\n"
        "    log.info('quiet')\n"
        "    log.debug('quieter')\n"
        "    print('LOADED', 'structlog' in sys.modules)\n"
        "    log.warning('loud')\n"
        "print('LOADED', 'structlog' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    assert out[0] == "LOADED False"
    assert json.loads(out[1])["event"] == "loud"
    assert json.loads(out[1])["company"] == "acme"
    assert out[2] == "LOADED True"
    assert "quiet" not in "".join(out)


def test_standard_error_given_is_followed_even_when_applied_later() -> None:
    """``configure(stream=sys.stderr)`` means the current standard error, whatever it is when
    a line is written: the configuration may be applied long after (structlog loads with the
    first line at the level), when the stream that was sys.stderr then is closed."""
    probe = (
        "import io, sys\n"
        "from sync.foundation.logs import configure, get_logger\n"
        "first = io.StringIO()\n"
        "sys.stderr = first\n"
        "configure('json', 'warning', stream=sys.stderr)\n"
        "first.close()  # what a finished test's capture does\n"
        "second = io.StringIO()\n"
        "sys.stderr = second\n"
        "get_logger('t').warning('written_later')\n"
        "sys.__stdout__.write(str('written_later' in second.getvalue()))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.stdout == "True", out.stderr
