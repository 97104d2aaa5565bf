"""The reference-sync engine: one company, its kinds in dependency order, end to end.

Per kind: settle what an earlier run left open (operations of unknown outcome, by one read) ->
read-back when asked (``--full``) or when the remote copy is empty (a lost state DB is rebuilt
from iCompleat, never re-created into it) -> source read (off the loop) -> normalise -> hold back
rows that must not be sent -> diff against the remote copy -> plan (finishing an interrupted
refresh first) -> guard -> apply. An apply round that ends with unknown outcomes is settled by a
read and planned again (bounded), so only what the read shows missing is redone.

The caller holds the lease and records the run (the daemon's job wrapper, ``icsync sync``);
the engine journals every call and passes the caller's fence to every state write.

Outcomes: ``ok``; ``partial`` (rows rejected, calls failed, a source unreadable: exit 4);
``blocked`` (a guard refused: exit 3, nothing destructive sent); ``auth`` (401: the run stops at
once, exit 5); ``failed`` (an unexpected error: exit 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sync.foundation.config import CompanyConfig, selected_kinds
from sync.foundation.entities import get_kind
from sync.foundation.errors import (
    ApiError,
    AuthRejected,
    ConfigError,
    ExitCode,
    IcsyncError,
    LeaseLost,
    SourceError,
)
from sync.foundation.logs import bound, get_logger
from sync.foundation.outcomes import worst
from sync.foundation.reprs import brief_repr
from sync.reference.apply import KindResult, KindRun
from sync.reference.kind import KindSync, PlannedKind
from sync.reference.readback import Drift
from sync.reference.rules.plan import Plan
from sync.runtime.context import Runtime
from sync.state.rows import Fence

__all__ = ["CompanyResult", "KindResult", "readback_company", "sync_company"]

log = get_logger("icsync.engine")

@dataclass
class CompanyResult:
    """What one job did for one company."""

    __repr__ = brief_repr

    company: str
    outcome: str = "ok"
    exit_code: ExitCode = ExitCode.OK
    kinds: list[KindResult] = field(default_factory=list)
    plan: Plan | None = None
    error: str | None = None
    drift: list[Drift] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    def settle(self) -> CompanyResult:
        """Fix ``outcome`` and ``exit_code`` from the kinds (unless already worse)."""
        outcome = worst([self.outcome, *(k.outcome for k in self.kinds)])
        self.outcome, self.exit_code = outcome, outcome.exit_code
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` and the runs table."""
        return {"company": self.company, "outcome": self.outcome,
                "exit_code": int(self.exit_code), "error": self.error,
                "dry_run": self.dry_run, "seconds": round(self.seconds, 3),
                "kinds": [k.to_dict() for k in self.kinds],
                "drift": [d.to_dict() for d in self.drift],
                "plan": self.plan.to_dict() if self.plan is not None else None}


@dataclass
class Options:
    """How a company job runs (the flags of ``icsync sync``)."""

    dry_run: bool = False
    full: bool = False
    allow_deletes: bool = False
    fence: Fence | None = None
    on_plan: Callable[[str, int], None] | None = None
    on_progress: Callable[[int], None] | None = None


def check_selection(company: CompanyConfig, kinds: Sequence[str] | None) -> list[str]:
    """The kinds to run for ``company`` (see :func:`selected_kinds`); ConfigError when the
    selection or the company cannot run (no source)."""
    names = selected_kinds(company, kinds)
    if company.source is None:
        raise ConfigError(f"company {company.name!r} has no source to sync from",
                          key="companies.source")
    return names


async def sync_company(
    rt: Runtime, company: CompanyConfig, *, kinds: Sequence[str] | None = None,
    dry_run: bool = False, full: bool = False, allow_deletes: bool = False,
    fence: Fence | None = None, on_plan: Callable[[str, int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> CompanyResult:
    """Plan (``dry_run``) or apply the reference sync of one company; never raises for an
    outcome (a blocked guard, a 401, a failed source...): read ``CompanyResult.outcome``.

    Progress is reported through callbacks (the engine never draws anything): ``on_plan(label,
    calls)`` when a kind's plan is made, ``on_progress(calls)`` after each call it makes."""
    options = Options(dry_run=dry_run, full=full, allow_deletes=allow_deletes, fence=fence,
                      on_plan=on_plan, on_progress=on_progress)
    return await run_company(rt, company, kinds, options)


async def readback_company(rt: Runtime, company: CompanyConfig, *,
                           fence: Fence | None = None) -> CompanyResult:
    """The read-back job: read every remote list in full, find drift, apply the drift policy
    (``source-wins`` then repairs iCompleat from the source; ``report`` changes nothing)."""
    return await run_company(rt, company, None, Options(full=True, fence=fence))


async def run_company(rt: Runtime, company: CompanyConfig, kinds: Sequence[str] | None,
                      options: Options) -> CompanyResult:
    """Run every selected kind; turn the project's errors into the result's outcome."""
    started = time.monotonic()
    result = CompanyResult(company.name, dry_run=options.dry_run)
    before = _answers(rt)
    try:
        names = check_selection(company, kinds)
        await _run_kinds(rt, company, names, options, result)
    except AuthRejected as exc:
        result.outcome, result.error = "auth", str(exc)
    except (ConfigError, LeaseLost):
        raise  # a bad configuration, or another instance took over: not an outcome
    except IcsyncError as exc:
        result.outcome, result.error = "failed", str(exc)
        log.error("company job failed", company=company.name, error=str(exc))
    _unreachable(rt, result, before)
    result.seconds = time.monotonic() - started
    return result.settle()


def _answers(rt: Runtime) -> tuple[int, int]:
    stats = getattr(rt.client, "stats", None)
    return stats.answers() if stats is not None else (0, 0)


def _unreachable(rt: Runtime, result: CompanyResult, before: tuple[int, int]) -> None:
    """A run in which not one call got an answer failed as a whole (exit 1), not in part."""
    answered, unanswered = (now - then for now, then in zip(_answers(rt), before, strict=True))
    if unanswered and not answered and result.outcome in ("ok", "partial"):
        base = rt.config.settings.icompleat.base_url
        first = result.error or next((k.error for k in result.kinds if k.error), None)
        result.outcome = "failed"
        result.error = (f"no call reached iCompleat at {base} ({unanswered} requests, each "
                        f"refused or timed out after the configured retries): check "
                        f"[icompleat] base_url and that this host can reach it"
                        + (f"; first error: {first}" if first else ""))
        log.error("icompleat_unreachable", company=result.company, base_url=base,
                  requests=unanswered)


async def _run_kinds(rt: Runtime, company: CompanyConfig, names: list[str], options: Options,
                     result: CompanyResult) -> None:
    planned: list[PlannedKind] = []
    try:
        for name in names:
            kind_result = KindResult(name)
            result.kinds.append(kind_result)
            run = KindRun(rt, company, get_kind(name), None, options.fence, kind_result,
                          options.on_progress)
            with bound(kind=name):
                planned.append(await _one_kind(run, options, result))
    finally:
        result.plan = KindSync.company_plan(company.name, planned)


async def _one_kind(run: KindRun, options: Options, result: CompanyResult) -> PlannedKind:
    started = time.monotonic()
    step = KindSync(run, options.dry_run, options.full, options.allow_deletes, options.on_plan)
    try:
        return await step.execute(result.drift)
    except (SourceError, ApiError) as exc:
        if isinstance(exc, AuthRejected):
            raise
        # A source that cannot be read, or iCompleat failing a read after the client's
        # retries: this kind is partial, the run goes on with the next one.
        run.result.outcome, run.result.error = "partial", str(exc)
        return step.planned
    finally:
        run.result.seconds = round(time.monotonic() - started, 3)
