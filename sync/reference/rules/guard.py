"""Safety rules: an empty, partial or shrunken source never removes remote data unasked (pure).

Only destructive plans are judged (any delete, or a refresh while iCompleat holds records, since
a refresh replaces the live set); creates and edits alone always go ahead. A destructive plan
is refused when, in this order:

- ``empty_source``: the source returned no rows while iCompleat holds some;
- ``partial_read``: the source said its read was incomplete;
- ``shrink``: the records that would go (remote minus source, or the planned deletes if more)
  exceed EITHER ``max_shrink_percent`` of the remote records OR ``max_shrink_rows``.

``allow=True`` (the operator's ``--allow-deletes``) lets it proceed; the verdict still names
the rule it overrode, for the log.
"""

from __future__ import annotations

from sync.foundation.config import GuardConfig
from sync.foundation.errors import GuardBlocked
from sync.reference.rules.plan import GuardVerdict, KindPlan

OVERRIDE_FLAG = "--allow-deletes"




def _broken_rule(source_count: int, remote_count: int, complete: bool, deletes: int,
                 config: GuardConfig) -> tuple[str | None, str]:
    if source_count == 0 and remote_count > 0:
        return "empty_source", (f"the source returned no rows while iCompleat holds "
                                f"{remote_count}")
    if not complete:
        return "partial_read", "the source was read only in part"
    shrink = max(remote_count - source_count, deletes, 0)
    percent = 100.0 * shrink / remote_count if remote_count else 0.0
    if shrink and (percent > config.max_shrink_percent or shrink > config.max_shrink_rows):
        return "shrink", (f"{shrink} of {remote_count} records would be removed ({percent:.1f}%),"
                          f" past the limit of {config.max_shrink_percent:g}% or "
                          f"{config.max_shrink_rows} rows")
    return None, f"{shrink} of {remote_count} records would be removed, within the limits"


def check_guard(
    kind: str, company: str, *, source_count: int, remote_count: int, complete: bool,
    plan: KindPlan, config: GuardConfig, allow: bool,
) -> GuardVerdict:
    """Judge ``plan`` for ``kind`` of ``company`` against the rules in the module docstring."""
    where = f"{company} / {kind}"
    if not (plan.deletes or plan.field_deletes or (plan.strategy == "refresh" and remote_count)):
        return GuardVerdict(True, None, f"{where}: no deletes and no refresh planned", kind,
                            company)
    rule, why = _broken_rule(source_count, remote_count, complete, len(plan.deletes), config)
    if rule is None:
        return GuardVerdict(True, None, f"{where}: {why}", kind, company)
    if allow:
        return GuardVerdict(True, rule, f"{where}: {why}; going ahead because {OVERRIDE_FLAG} "
                            "was given", kind, company)
    return GuardVerdict(False, rule, (
        f"{where}: blocked ({rule}): {why}. Nothing will be deleted or refreshed; creates and "
        f"edits still go out one record at a time. Check the "
        f"source; if the removal is intended, run again with {OVERRIDE_FLAG} (or raise "
        "[guard] max_shrink_percent / max_shrink_rows)"), kind, company)


def raise_if_blocked(verdict: GuardVerdict) -> GuardVerdict:
    """``verdict`` itself when allowed; GuardBlocked carrying its message otherwise."""
    if not verdict.allowed:
        raise GuardBlocked(verdict.message, company=verdict.company, kind=verdict.kind,
                           rule=verdict.rule or "guard")
    return verdict


def guard_plan(
    kind: str, company: str, *, source_count: int, remote_count: int, complete: bool,
    plan: KindPlan, config: GuardConfig, allow: bool,
) -> GuardVerdict:
    """:func:`check_guard`, raising :class:`sync.foundation.errors.GuardBlocked` when the plan is
    refused."""
    return raise_if_blocked(check_guard(
        kind, company, source_count=source_count, remote_count=remote_count,
        complete=complete, plan=plan, config=config, allow=allow))
