"""The operator console's pages as pure functions: plain data in, one HTML document out.

No scripts, no external stylesheet, font or image (air-gapped sites): styles are inline and the
run chart is an inline SVG. Every value from the state DB is escaped. Forms (retry, resolve)
appear only when the console's actions are switched on; each carries the CSRF value and asks
for the operator's name and the console token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import quote

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2733;background:#f4f6f8}
header{background:#1d3557;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#fff;text-decoration:none}header h1{font-size:18px;margin:0 24px 0 0}
main{padding:16px 24px;max-width:1200px}
section{background:#fff;border-radius:6px;padding:12px 16px;margin:0 0 16px;
box-shadow:0 1px 2px #0002}h2{font-size:16px;margin:4px 0 10px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;
border-bottom:1px solid #e3e7eb;vertical-align:top}th{font-weight:600;color:#51606f}
.ok{color:#1b7f3b}.bad{color:#b3261e;font-weight:600}.warn{color:#a15c00}.muted{color:#6b7785}
.num{font-variant-numeric:tabular-nums;text-align:right}.note{padding:8px 12px;
background:#e8f3ea;border-radius:4px}.err{background:#fdecea}
form.inline{display:inline-flex;gap:4px}input{font:inherit;padding:2px 4px}
button{font:inherit;padding:2px 10px;cursor:pointer}
"""
GOOD = frozenset({"ok"})
BAD = frozenset({"failed", "auth", "error", "lease_lost", "blocked"})


@dataclass(frozen=True)
class Forms:
    """What an action form needs: the CSRF value (None: the console is read-only)."""

    csrf: str | None = None


def page(title: str, body: str, *, note: str = "", error: bool = False) -> str:
    """A whole HTML document with the navigation bar."""
    banner = f'<p class="note{" err" if error else ""}">{escape(note)}</p>' if note else ""
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{escape(title)} · icsync</title><style>{STYLE}</style></head><body>"
            '<header><h1>icsync</h1><a href="/">Overview</a><a href="/quarantine">Quarantine</a>'
            f"</header><main>{banner}{body}</main></body></html>")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str,
          test_id: str = "") -> str:
    """A table of pre-escaped cells (``empty`` when there is no row)."""
    cells = ["<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows]
    if not cells:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    tid = f' data-testid="{escape(test_id)}"' if test_id else ""
    return f"<table{tid}><thead><tr>{head}</tr></thead><tbody>{''.join(cells)}</tbody></table>"


def outcome(value: str | None) -> str:
    """An outcome, coloured."""
    text = value or "running"
    css = "ok" if text in GOOD else "bad" if text in BAD else "warn"
    return f'<span class="{css}">{escape(text)}</span>'


def when(value: datetime | None) -> str:
    """A UTC time, to the second."""
    return "" if value is None else escape(f"{value:%Y-%m-%d %H:%M:%S}")


def num(value: Any, test_id: str = "") -> str:
    """A number cell, optionally with a test id."""
    tid = f' data-testid="{escape(test_id)}"' if test_id else ""
    return f'<span class="num"{tid}>{escape(str(value))}</span>'


def section(title: str, content: str, test_id: str = "") -> str:
    """A titled panel."""
    tid = f' data-testid="{escape(test_id)}"' if test_id else ""
    return f"<section{tid}><h2>{escape(title)}</h2>{content}</section>"


def run_chart(points: Sequence[tuple[datetime, float, int]], now: datetime,
              days: int = 30) -> str:
    """An inline SVG of the last ``days`` days: one bar per run's duration (seconds, left
    axis) and one dot per run's iCompleat calls (right axis)."""
    width, height, pad = 760, 180, 40
    start = now - timedelta(days=days)
    span = (now - start).total_seconds()
    top_s = max([p[1] for p in points] + [1.0])
    top_c = max([p[2] for p in points] + [1])

    def x(at: datetime) -> float:
        return pad + (width - 2 * pad) * max(0.0, (at - start).total_seconds()) / span

    def y(value: float, top: float) -> float:
        return height - pad + 10 - (height - pad) * value / top

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="100%" role="img" aria-label="runs of the last {days} days" '
             f'data-testid="run-chart" data-runs="{len(points)}">',
             f'<line x1="{pad}" y1="{height - pad + 10}" x2="{width - pad}" '
             f'y2="{height - pad + 10}" stroke="#889"/>']
    for at, seconds, calls in points:
        cx = x(at)
        parts.append(f'<rect x="{cx - 1.5:.1f}" y="{y(seconds, top_s):.1f}" width="3" '
                     f'height="{max(0.5, y(0, top_s) - y(seconds, top_s)):.1f}" fill="#457b9d">'
                     f"<title>{when(at)}: {seconds:.1f} s, {calls} calls</title></rect>")
        parts.append(f'<circle cx="{cx:.1f}" cy="{y(calls, top_c):.1f}" r="2.5" '
                     f'fill="#e76f51"/>')
    for day in range(0, days + 1, 5):
        at = start + timedelta(days=day)
        parts.append(f'<text x="{x(at):.1f}" y="{height - 6}" font-size="10" '
                     f'text-anchor="middle" fill="#667">{at:%m-%d}</text>')
    parts += [f'<text x="4" y="14" font-size="10" fill="#457b9d">▮ duration (max '
              f"{top_s:.1f} s)</text>",
              f'<text x="{width - 4}" y="14" font-size="10" text-anchor="end" '
              f'fill="#e76f51">● calls (max {top_c})</text></svg>']
    return "".join(parts)


def action_form(action: str, item: str, forms: Forms) -> str:
    """A retry or resolve form for one item (empty when the console is read-only)."""
    if forms.csrf is None:
        return ""
    return (f'<form class="inline" method="post" action="/actions/{escape(action)}">'
            f'<input type="hidden" name="csrf" value="{escape(forms.csrf)}">'
            f'<input type="hidden" name="item" value="{escape(item)}">'
            '<input name="operator" placeholder="your name" required size="10" '
            'autocomplete="username">'
            '<input type="password" name="token" placeholder="console token" required '
            'size="12" autocomplete="current-password">'
            f'<button type="submit" data-testid="{escape(action)}-{escape(item)}">'
            f"{escape(action)}</button></form>")


def job_link(company: str, job: str) -> str:
    """A link to one job's history page."""
    return (f'<a href="/runs/{quote(company, safe="")}/{quote(job, safe="")}">'
            f"{escape(company)} / {escape(job)}</a>")


def overview(data: Mapping[str, Any]) -> str:
    """The overview page."""
    jobs = [(job_link(r["company"], r["job"]), outcome(r["outcome"]), when(r["started_at"]),
             num(r["seconds"]), num(r["calls"]), escape(r["counts"]), escape(r["error"] or ""))
            for r in data["latest"]]
    alerts = [(escape(a.key), escape(a.detail), when(a.started_at)) for a in data["alerts"]]
    quarantine = [(escape(c), escape(k), num(n, f"quarantine-{c}-{k}"))
                  for (c, k), n in sorted(data["quarantine"].items())]
    backlog = [(escape(c), escape(s), num(n, f"backlog-{c}-{s}"))
               for (c, s), n in sorted(data["backlog"].items())]
    leases = [(escape(x.name), f'<span data-testid="holder-{escape(x.name)}">'
               f"{escape(x.holder)}</span>", num(x.token), when(x.expires_at),
               '<span class="ok">held</span>' if x.live else '<span class="muted">free</span>')
              for x in data["leases"]]
    capabilities = [(escape(a.subject), escape(a.detail), when(a.started_at))
                    for a in data["capabilities"]]
    learned = [(escape(c.operation), '<span class="ok">supported</span>' if c.supported
                else f'<span class="bad">unsupported ({escape(str(c.status or ""))})</span>',
                escape(c.detail or ""), when(c.checked_at))
               for c in data.get("learned", ())]
    charts = [section(f"{c} / {j}: duration and calls per run, last 30 days", svg)
              for (c, j), svg in data["charts"].items()]
    body = "".join([
        section("Alerts active now", table(("condition", "what", "since"), alerts,
                                           empty="No alert condition is active.",
                                           test_id="alerts")),
        section("Jobs: last run", table(
            ("company / job", "outcome", "started (UTC)", "seconds", "calls", "counts",
             "error"), jobs, empty="No run recorded yet.", test_id="jobs")),
        *charts,
        section("Quarantine (open)", table(("company", "kind", "open"), quarantine,
                                           empty="Nothing is quarantined.")
                + '<p><a href="/quarantine">Reasons and what to do</a></p>'),
        section("Transaction ledger backlog", table(
            ("company", "status", "transactions"), backlog,
            empty="No transaction is waiting.")),
        section("Leases", table(("name", "holder", "token", "expires (UTC)", "state"), leases,
                                empty="No lease taken yet.")),
        section("Route capability changes", table(
            ("route", "change", "since"), capabilities,
            empty="No iCompleat route has changed what it offers.")),
        section("Route capabilities learned", table(
            ("operation", "answer", "detail", "checked (UTC)"), learned,
            empty="Every call answered as the contract says (nothing refused with 404/405).",
            test_id="capabilities")),
    ])
    return page("Overview", body)


def history(company: str, job: str, runs: Sequence[Any], chart: str) -> str:
    """One job's page: the 30-day chart and its last runs."""
    rows = [(num(r["id"]), outcome(r["outcome"]), when(r["started_at"]), num(r["seconds"]),
             num(r["calls"]), escape(r["counts"]), escape(r["error"] or "")) for r in runs]
    body = section(f"{company} / {job}: the last 30 days", chart) + section(
        "Last runs", table(("run", "outcome", "started (UTC)", "seconds", "calls", "counts",
                            "error"), rows, empty="No run recorded yet.", test_id="runs"))
    return page(f"{company} / {job}", body)


ADVICE = {
    "validation": "Fix the row in the ERP; the next run sends it again when it changes.",
    "remote": "iCompleat refused it: fix the value in the ERP, or retry once fixed there.",
}


def quarantine(records: Sequence[Any], transactions: Sequence[Any], names: Mapping[str, str],
               forms: Forms, *, note: str = "", error: bool = False) -> str:
    """The quarantine page: records and transactions with reasons, what to do, and actions."""
    rec = [(num(r.id), escape(r.company), escape(r.kind), escape(r.key), escape(r.reason),
            escape(r.message), escape(r.status), escape(ADVICE.get(r.origin, "")),
            action_form("retry", f"record:{r.id}", forms)
            + action_form("resolve", f"record:{r.id}", forms)) for r in records]
    txs = [(escape(names.get(t.company_id, t.company_id)), escape(t.transaction_id),
            num(t.attempts), escape(t.last_error or ""), when(t.next_attempt_at),
            action_form("retry", f"tx:{t.company_id}:{t.transaction_id}", forms)
            + action_form("resolve", f"tx:{t.company_id}:{t.transaction_id}", forms))
           for t in transactions]
    mode = ("" if forms.csrf else '<p class="muted">Read-only: set [service] console_actions '
            "= true (with a console token) to retry or resolve from here, or use "
            "<code>icsync errors retry|resolve</code>.</p>")
    body = mode + section("Quarantined records", table(
        ("id", "company", "kind", "key", "reason", "message", "status", "what to do", ""),
        rec, empty="No record is quarantined.", test_id="records")) + section(
        "Quarantined transactions (refused by the ERP)", table(
            ("company", "transaction", "attempts", "why", "next attempt (UTC)", ""), txs,
            empty="No transaction is quarantined.", test_id="transactions"))
    return page("Quarantine", body, note=note, error=error)
