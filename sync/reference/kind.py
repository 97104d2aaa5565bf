"""One kind of one company through the whole pipeline: settle, read-back, read, plan, apply.

:class:`KindSync` is the per-kind half of :mod:`sync.reference.engine`. Rows that must not be sent
are
HELD: rows the validation rejected in this read and rows iCompleat refused earlier whose source
is unchanged (quarantine). A held key is never created, edited or deleted (the diff's ``hold``);
a refresh re-sends the remote copy's version of held records so it does not drop them either.
Nothing rejected is ever turned into a delete.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from connectors.base import CompanyRef, SourceRead
from connectors.sha_child import sha256_batches
from sync.foundation import clock
from sync.foundation.config import Settings
from sync.foundation.entities import WRITE_CHUNK_SIZE, Kind
from sync.foundation.logs import get_logger
from sync.reference import checked, fingerprint, holds
from sync.reference.apply import (
    ApplyOutcome,
    KindRun,
    Records,
    apply_targeted,
    canonical,
    frame_records,
)
from sync.reference.fields import MARKER_PREFIX, apply_fields
from sync.reference.readback import Drift, confirmed_read, find_drift, readback_kind
from sync.reference.refresh import apply_refresh
from sync.reference.rules.diff import KindDiff, diff
from sync.reference.rules.findings import Rejection
from sync.reference.rules.guard import check_guard
from sync.reference.rules.keys import in_key_order, key_order
from sync.reference.rules.mapping import unsent_note
from sync.reference.rules.normalise import KindMapping, Normalised, canonical_records, normalise
from sync.reference.rules.plan import (
    GuardVerdict,
    KindPlan,
    Plan,
    plan_custom_fields,
    plan_kind,
    restricted,
)
from sync.reference.settle import settle_open
from sync.runtime.capabilities import reference_operations
from sync.state.rows import RefreshRow

log = get_logger("icsync.engine")

MAX_ROUNDS = 4  # apply rounds per kind and run: the first, then re-plans after settling


@dataclass
class PlannedKind:
    """The first plan of a kind in this run, with the rows normalisation set aside."""

    plan: KindPlan | None = None
    rejected: tuple[Rejection, ...] = ()
    warnings: tuple[Rejection, ...] = ()
    verdict: GuardVerdict | None = None


class FrameDigests(Mapping[str, str]):
    """The digests of a light view, looked up in its frame (no million-entry dict)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def __len__(self) -> int:
        return len(self._frame)

    def __iter__(self) -> Iterator[str]:
        return iter(self._frame.index.tolist())

    def __getitem__(self, key: str) -> str:
        if key not in self._frame.index:
            raise KeyError(key)
        return str(self._frame.at[key, "_digest"])


@dataclass
class StateView:
    """The remote copy a plan is made against (or, in a dry run, a read of iCompleat).

    A LIGHT view (``records`` None) has only keys and digests, which is all a diff needs to
    find creates, deletes and unchanged rows. When the diff finds edits (for their field-level
    before and after) or the plan must re-send kept records, the records of those keys alone
    are read (``records`` then holds them only), and the edited ones are set in the frame.
    ``copy``: the keys and digests as they were read (Arrow arrays or lists) and their hash,
    for the fingerprint.
    """

    records: Records | None
    digests: Mapping[str, str]
    frame: pd.DataFrame = field(repr=False)
    copy: fingerprint.StoredCopy | None = field(default=None, repr=False)

    @property
    def light(self) -> bool:
        """True when only keys and digests were loaded."""
        return self.records is None


def digest_frame(kind: Kind, keys: Sequence[str] | pa.Array,
                 digests: Sequence[str] | pa.Array) -> pd.DataFrame:
    """Pure: a canonical-shaped frame with the keys and digests only (every field None), from
    the two as the state database lists them (in any order): lists, or Arrow string arrays
    (ordered in Arrow: see :func:`in_key_order`)."""
    if isinstance(keys, pa.Array) and isinstance(digests, pa.Array):
        keys, digests = in_key_order(keys, digests)
        key_values = keys.to_numpy(zero_copy_only=False)
        digest_values = digests.to_numpy(zero_copy_only=False)
    else:
        at = key_order(list(keys))
        key_values = np.array(keys, dtype=object)[at]
        digest_values = np.array(digests, dtype=object)[at]
    index = pd.Index(key_values, dtype=object, name="key")
    empty = np.full(len(index), None, dtype=object)
    data: dict[str, Any] = {f: empty for f in kind.field_names}
    data["_digest"] = digest_values
    return pd.DataFrame(data, index=index, dtype=object, copy=False)


def fill_frame(kind: Kind, light: pd.DataFrame, records: Sequence[Mapping[str, Any]],
               digests: Mapping[str, str]) -> pd.DataFrame:
    """Pure: the light frame ``light`` with the canonical values of ``records`` (stored
    records, with their stored ``digests``) in their keys' rows; the other rows stay empty."""
    part = canonical_records(kind, records, stored_digests=digests)
    at = light.index.get_indexer(part.index)
    part = part[at >= 0]
    at = at[at >= 0]
    data: dict[str, Any] = {}
    for name in kind.field_names:
        column = np.full(len(light), None, dtype=object)
        column[at] = part[name].to_numpy(dtype=object)
        data[name] = column
    data["_digest"] = light["_digest"].to_numpy(dtype=object)
    return pd.DataFrame(data, index=light.index, dtype=object, copy=False)


def _settle_task(task: asyncio.Task[Any]) -> None:
    """A read started ahead and not needed after all: stopped if still waiting, and its
    failure (if any) taken so it is not reported as never retrieved."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


def without(frame: pd.DataFrame, keys: Iterable[str]) -> pd.DataFrame:
    """Pure: ``frame`` without the rows of ``keys``."""
    drop = [k for k in set(keys) if k in frame.index]
    return frame.drop(index=drop) if drop else frame


def kind_mapping(settings: Settings, source: str, kind: str) -> KindMapping:
    """The column mapping configured for ``kind`` in ``[sources.<source>]``."""
    return KindMapping.from_config(settings.sources[source].kinds.get(kind))


class KindSync:
    """Run one kind; ``planned`` holds what was planned even when the run stops early."""

    def __init__(self, run: KindRun, dry_run: bool, full: bool, allow_deletes: bool,
                 on_plan: Callable[[str, int], None] | None = None) -> None:
        self.run, self.dry_run, self.full, self.allow = run, dry_run, full, allow_deletes
        self.on_plan = on_plan
        self.planned = PlannedKind()
        self.complete = True
        self.counted: set[str] = set()
        # The stored remote copy a plan found nothing to do against (so nothing was written):
        # the fingerprint kept at the end hashes it instead of reading a million rows again.
        self.untouched: StateView | None = None
        # The first plan sent nothing (and this is not a dry run): the run can be replayed.
        self.idle = False
        self.policy = run.company.delete_policy.get(run.kind.name, "delete")

    @staticmethod
    def company_plan(company: str, planned: Sequence[PlannedKind]) -> Plan:
        """The company's plan from its kinds' first plans."""
        return Plan(company=company, kinds=tuple(p.plan for p in planned if p.plan is not None),
                    rejected=tuple(r for p in planned for r in p.rejected),
                    warnings=tuple(w for p in planned for w in p.warnings),
                    verdicts=tuple(p.verdict for p in planned if p.verdict is not None))

    async def execute(self, drifts: list[Drift]) -> PlannedKind:
        """Settle, read back if needed, plan and (unless a dry run) apply."""
        run = self.run
        override = None
        if not self.dry_run:
            await settle_open(run)
        empty = not await run.db(run.rt.store.has_remote, run.company.name, run.kind.name)
        if self.full or empty:
            with self._stage("readback"):
                drift, override = await self._readback()
            if self.full:
                drifts.append(drift)
        # The stored keys and digests are read beside the source (another process, on a
        # SQLite state file): the fingerprint and the first plan both start from them.
        ahead = self._state_ahead() if override is None else None
        try:
            return await self._from_source(empty, override, ahead)
        finally:
            if ahead is not None:
                _settle_task(ahead)

    async def _from_source(self, empty: bool, override: StateView | None,
                           ahead: Awaitable[fingerprint.StoredCopy] | None) -> PlannedKind:
        """Read; unless the fingerprint shows nothing changed, normalise, plan and (unless a
        dry run) apply, keeping the fingerprint of a clean run."""
        run = self.run
        with self._stage("read"):
            read = await self._read_source()
        kept, prints = None, None
        fast_path = override is None and not self.full and read.complete
        # The fingerprint serves the fast path, and a run that applies keeps it; a dry run
        # that cannot take the fast path (an empty state, --full) has no use for it.
        if fast_path or not self.dry_run:
            with self._stage("fingerprint"):
                prints = (await asyncio.to_thread(fingerprint.source_hash, read.frame),
                          fingerprint.kind_settings(run))
                if fast_path:
                    kept = await fingerprint.unchanged(run, *prints, remote=ahead)
        if kept is not None:
            return await self._nothing_to_do(kept)
        compared = await self._compared_keys(empty, override)
        self.complete = read.complete
        frames = [read.frame]
        # The raw frame as read (a million rows: hundreds of MB) is held by ``frames`` alone,
        # which normalising empties: it is freed as soon as its values are no longer needed.
        del read
        norm = await self._normalise(frames, compared)
        self.planned = PlannedKind(None, norm.rejected, norm.warnings)
        run.result.rejected += norm.rejected_rows
        run.result.blank, run.result.filtered = norm.blank, norm.filtered
        if not self.dry_run:
            await holds.record_rejections(run, norm.rejected)
        await self._rounds(norm.frame, override, ahead)
        if run.result.rejected or run.result.failed:
            run.result.outcome = "partial" if run.result.outcome == "ok" else run.result.outcome
        repeatable, replay = self._repeatable(norm)
        if repeatable and prints is not None:
            remote = self.untouched.copy if self.untouched is not None else None
            await fingerprint.keep(run, *prints, remote=remote, replay=replay)
        return self.planned

    def _repeatable(self, norm: Normalised) -> tuple[bool, fingerprint.Replay | None]:
        """Whether the run keeps a fingerprint, and the replay it keeps with it (see
        :mod:`sync.reference.fingerprint`): an idle run is replayed with its findings; a clean
        run that applied leaves an empty plan behind. A dry run, an incomplete read and a run
        with failed, unknown or blocked calls keep nothing."""
        result = self.run.result
        if (self.dry_run or not self.complete or result.failed or result.unknown
                or result.error is not None or result.outcome not in ("ok", "partial")):
            return False, None
        plan = self.planned.plan
        if self.idle and plan is not None:
            replay = fingerprint.Replay(plan, norm.rejected, norm.warnings, result.rejected,
                                        norm.blank, norm.filtered, result.outcome)
            if replay.size <= fingerprint.REPLAY_MAX:
                return True, replay
        clean = result.outcome == "ok" and not result.rejected and not norm.warnings
        return clean, None

    async def _nothing_to_do(self, kept: fingerprint.Fingerprint) -> PlannedKind:
        """The fast path's plan: the kept run's replay (its plan, findings and counts, with
        its rejected rows quarantined again), or every record unchanged; no call. The guard
        judges it as it judges a full path's plan (an allowed verdict: it sends nothing)."""
        run = self.run
        replay = kept.replay
        if replay is not None:
            self.planned = PlannedKind(None, replay.rejected, replay.warnings)
            plan = replay.plan
            run.result.rejected += replay.rejected_rows
            run.result.blank, run.result.filtered = replay.blank, replay.filtered
            if run.result.outcome == "ok":
                run.result.outcome = replay.outcome
            if not self.dry_run and replay.rejected:
                await holds.record_rejections(run, replay.rejected)
        else:
            count, name = kept.count, run.kind.name
            plan = KindPlan(
                kind=name, strategy="none", diff=KindDiff(name, unchanged=count),
                source_count=count, remote_count=count, calls=0, targeted_calls=0,
                refresh_calls=max(1, math.ceil(count / WRITE_CHUNK_SIZE)))
        self.planned.verdict = check_guard(
            run.kind.name, run.company.name, source_count=plan.source_count,
            remote_count=plan.remote_count, complete=True, plan=plan,
            config=run.rt.config.settings.guard_for(run.company, run.kind.name),
            allow=self.allow)
        self._first_plan(plan)
        return self.planned

    async def _readback(self) -> tuple[Drift, StateView | None]:
        if not self.dry_run:
            return await readback_kind(self.run), None
        run = self.run
        state = await run.db(run.rt.store.remote_records, run.company.name, run.kind.name)
        digests = await run.db(run.rt.store.remote_digests, run.company.name, run.kind.name)
        remote, unconfirmed = await confirmed_read(run, set(state))
        drift = find_drift(run.kind.name, remote.records, state, remote.digests, digests,
                           unconfirmed, run.company.drift_policy)
        if run.company.drift_policy == "report" and state:
            return drift, None
        return drift, await self._view(remote.records, remote.digests)

    async def _view(self, records: Records, digests: dict[str, str], *,
                    stored: bool = False) -> StateView:
        """The view of ``records``; ``stored`` when ``digests`` were kept beside these very
        records in state, so they are used as they are instead of being computed again."""
        if stored:
            frame = await asyncio.to_thread(canonical_records, self.run.kind,
                                            list(records.values()), stored_digests=digests)
        else:
            frame = await asyncio.to_thread(canonical, self.run.kind, list(records.values()))
        return StateView(records, digests, frame)

    def _state_ahead(self) -> asyncio.Task[fingerprint.StoredCopy]:
        """Start reading the stored keys and digests and hashing them for the fingerprint (see
        :func:`fingerprint.copy_now`): when read ahead, this happens while the source is
        still being read. (The light frame is made from them later, once normalising has
        freed the source's rows: at a million rows both at once would add 200 MB.)"""
        return asyncio.create_task(fingerprint.copy_now(self.run))

    async def _state(self, *, light: bool = False,
                     ahead: Awaitable[fingerprint.StoredCopy] | None = None) -> StateView:
        """The stored remote copy: LIGHT (keys and digests, from ``ahead`` when given) or
        whole."""
        store, company, kind = self.run.rt.store, self.run.company.name, self.run.kind.name
        if light:
            copy = await (ahead if ahead is not None else fingerprint.copy_now(self.run))
            frame = await asyncio.to_thread(digest_frame, self.run.kind, copy.keys, copy.digests)
            return StateView(None, FrameDigests(frame), frame, copy)
        digests = await self.run.db(store.remote_digests, company, kind)
        records = await self.run.db(store.remote_records, company, kind)
        return await self._view(records, digests, stored=True)

    def _needed(self, kind_diff: KindDiff) -> list[str]:
        """The stored records a light view's plan needs: the edited ones (their field-level
        before and after), the held ones and, under delete policy "ignore", those beyond the
        source (a refresh re-sends them as they are)."""
        kept = kind_diff.deletes if self.policy == "ignore" else ()
        return [*kind_diff.edited_keys, *kind_diff.held, *kept]

    async def _filled(self, state: StateView, keys: Sequence[str],
                      edited: Sequence[str]) -> StateView:
        """``state`` with the stored records of ``keys`` read (a few records of a million, not
        the whole copy), those of the ``edited`` keys set in its frame (their digests as
        stored) for the edits' before and after. Held and kept records are sent from the
        records as read: without edits the frame stays as it is, with no million-row copy."""
        run = self.run
        records = await run.db(run.rt.store.remote_records_of, run.company.name,
                               run.kind.name, keys)
        part = [k for k in edited if k in records]
        if not part:
            return StateView(records, state.digests, state.frame, state.copy)
        stored = state.frame["_digest"].reindex(part)
        digests = {str(k): str(v) for k, v in stored.items()}
        frame = await asyncio.to_thread(fill_frame, run.kind, state.frame,
                                        [records[k] for k in part], digests)
        return StateView(records, state.digests, frame, state.copy)

    async def _read_source(self) -> SourceRead:
        run = self.run
        source = run.rt.source(str(run.company.source))
        ref = CompanyRef.of(run.company)
        return await asyncio.to_thread(source.read, run.kind.name, ref)

    async def _compared_keys(self, empty: bool,
                             override: StateView | None) -> set[str] | None:
        """The keys whose source digests a dry run over an empty state compares: those read
        back from iCompleat and those iCompleat refused (held while unchanged). None (every
        row) otherwise: a run that applies stores every row's digest, and a state of any size
        is compared whole."""
        if not (self.dry_run and empty and override is not None):
            return None
        run = self.run
        refused = await run.db(run.rt.store.quarantined, run.company.name, run.kind.name, None)
        return {*(str(k) for k in override.frame.index),
                *(q.key for q in refused if q.origin == "remote")}

    async def _normalise(self, frames: list[pd.DataFrame],
                         digest_only: set[str] | None = None) -> Normalised:
        """Normalise the one raw frame in ``frames``, taking it out (see the caller)."""
        settings = self.run.rt.config.settings
        mapping = kind_mapping(settings, str(self.run.company.source), self.run.kind.name)
        kind = self.run.kind
        unsent = [n for n in mapping.mapping if n in kind.field_names and not kind.field(n).sent]
        if unsent:
            log.info("mapping feeds a field never sent", note=unsent_note(kind, unsent))
        stages: dict[str, float] = {}
        known = await checked.known(self.run)

        def run() -> Normalised:
            return normalise(kind, frames.pop(), mapping, settings.validation, stages=stages,
                             digest_only=digest_only, hasher=sha256_batches, checked=known)

        try:
            norm = await asyncio.to_thread(run)
        finally:
            for stage, seconds in stages.items():
                self.run.result.timed(stage, seconds)
        if not self.dry_run:  # a dry run uses the kept values and writes nothing
            await checked.keep(self.run, norm.checked)
        return norm

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Count the time spent inside the block towards stage ``name`` of the kind's result."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.run.result.timed(name, time.perf_counter() - started)

    async def _held(self, frame: pd.DataFrame) -> set[str]:
        """Validation-rejected keys, plus iCompleat-refused rows whose source is unchanged."""
        run = self.run
        rejected = {r.key for r in self.planned.rejected if r.key and r.severity == "reject"}
        refused = await holds.remote_holds(run, frame, release=not self.dry_run)
        run.result.rejected += len(refused - run.rejected_keys - self.counted)
        self.counted |= refused
        return rejected | refused

    async def _markers(self) -> tuple[RefreshRow | None, set[str]]:
        rows = await self.run.db(self.run.rt.store.open_refreshes, self.run.company.name)
        mine = next((r for r in rows if r.kind == self.run.kind.name), None)
        fields = {r.kind[len(MARKER_PREFIX):] for r in rows if r.kind.startswith(MARKER_PREFIX)}
        return mine, fields if self.run.kind.field_values else set()

    async def _can_append(self) -> str | None:
        token = await self.run.db(self.run.rt.store.append_token, self.run.company.name,
                                  self.run.kind.name)
        if token is None or clock.as_utc(token[1]) <= clock.utcnow() + timedelta(minutes=1):
            return None
        return token[0]

    async def _rounds(self, source: pd.DataFrame, override: StateView | None,
                      ahead: Awaitable[fingerprint.StoredCopy] | None = None) -> None:
        run = self.run
        for round_no in range(MAX_ROUNDS):
            with self._stage("state"):
                state = override or await self._state(
                    light=not run.kind.field_values, ahead=ahead if round_no == 0 else None)
                held = await self._held(source)
                work = without(source, held)
                marker, forced = await self._markers()
                token = await self._can_append()
            with self._stage("plan"):
                kind_diff = await asyncio.to_thread(diff, run.kind, work, state.frame, hold=held)
            needed = self._needed(kind_diff) if state.light else []
            if needed:
                by_key = len(needed) <= len(state.frame) // 2
                with self._stage("state"):
                    # Most of the copy needed (a changed mapping edits every row): read it
                    # whole, one pass, rather than by key.
                    state = (await self._filled(state, needed, kind_diff.edited_keys)
                             if by_key else await self._state())
                # Stored values change only the edits' before and after: without edits, a
                # copy read by key leaves the diff as it was.
                if kind_diff.edits or not by_key:
                    with self._stage("plan"):
                        kind_diff = await asyncio.to_thread(diff, run.kind, work, state.frame,
                                                            hold=held)
            with self._stage("plan"):
                refresh = marker is not None or await self._targeted_unsupported(kind_diff)
                # Off the event loop: at a million rows the plan takes about a second, which
                # the lease's renewal must not wait for.
                plan = await asyncio.to_thread(self._plan, kind_diff, work, state,
                                               token is not None, refresh)
                plan = self._guarded(plan, work, len(state.digests), token is not None, marker)
            if round_no == 0:
                self._first_plan(plan)
            if self.dry_run or (plan.strategy == "none" and marker is None and not forced):
                if round_no == 0 and override is None and state.copy is not None:
                    self.untouched = state
                self.idle = round_no == 0 and not self.dry_run
                return
            unknown = run.result.unknown
            out = await self._apply(plan, work, state, token, marker, forced)
            if out.stopped:
                return
            if run.result.unknown > unknown:
                await settle_open(run)
            elif out.completed and not out.replan:
                return
        run.result.outcome = "partial"
        run.result.error = (f"{run.kind.label}: still not settled after {MAX_ROUNDS} rounds; "
                            "the next run carries on from the journal")

    async def _targeted_unsupported(self, kind_diff: KindDiff) -> bool:
        """True when the diff needs an edit-one or delete-one this tenant does not support
        (a 404/405 learned earlier): the kind is then sent by refresh instead."""
        if self.run.kind.field_values:
            return False
        edit, delete = reference_operations(self.run.kind.api)
        caps = self.run.rt.capabilities
        needs_delete = bool(kind_diff.deletes) and self.policy == "delete"
        return ((bool(kind_diff.edits) and not await caps.usable(edit))
                or (needs_delete and not await caps.usable(delete)))

    def _plan(self, kind_diff: KindDiff, work: pd.DataFrame, state: StateView,
              can_append: bool, refresh: bool) -> KindPlan:
        rejected = len({r.row for r in self.planned.rejected})  # rows, not messages
        if self.run.kind.field_values:
            return plan_custom_fields(self.run.kind, kind_diff, work, state.frame,
                                      delete_policy=self.policy, rejected=rejected)
        return plan_kind(self.run.kind, kind_diff, work, delete_policy=self.policy,
                         can_append=can_append, force="refresh" if refresh else None,
                         rejected=rejected)

    def _guarded(self, plan: KindPlan, work: pd.DataFrame, remote_count: int,
                 can_append: bool, marker: RefreshRow | None) -> KindPlan:
        """The plan, or what it may still do (creates and edits) when the guard refuses it;
        with a refresh left unfinished, a refused plan does nothing at all."""
        run = self.run
        verdict = check_guard(
            run.kind.name, run.company.name, source_count=len(work) + len(plan.diff.held),
            remote_count=remote_count, complete=self.complete, plan=plan,
            config=run.rt.config.settings.guard_for(run.company, run.kind.name),
            allow=self.allow)
        if self.planned.verdict is None or not verdict.allowed:
            self.planned.verdict = verdict
        if verdict.allowed:
            return plan
        run.result.outcome, run.result.error = "blocked", verdict.message
        # The plan shown (dry run or not) is the plan applied: what the block leaves.
        if marker is not None:
            run.result.error = verdict.message.replace(
                "creates and edits still go out one record at a time",
                "an unfinished refresh means nothing at all is sent")
            return replace(plan, strategy="none", calls=0, chunks=())
        return restricted(run.kind, plan, work, can_append=can_append)

    def _first_plan(self, plan: KindPlan) -> None:
        if self.planned.plan is not None:
            return
        self.planned.plan = plan
        self.run.result.unchanged = plan.diff.unchanged
        self.run.result.strategy = plan.strategy
        if self.on_plan is not None and not self.dry_run:
            self.on_plan(self.run.kind.label, plan.calls)

    def _records(self, plan: KindPlan, work: pd.DataFrame,
                 state: StateView) -> tuple[Records, dict[str, str]]:
        """Records to send: the source's, plus the remote copy's version of the KEPT ones
        (held rows, and those beyond the source under delete policy "ignore"). A targeted
        plan only needs the rows it edits or creates."""
        if plan.strategy == "targeted" and not self.run.kind.field_values:
            needed = [*plan.diff.edited_keys, *plan.diff.creates]
            work = work.loc[[k for k in needed if k in work.index]]
        records, digests = frame_records(self.run.kind, work)
        kept = state.records or {}  # a view filled for its plan holds the kept records
        records.update({k: kept[k] for k in plan.kept if k in kept})
        digests.update({k: state.digests[k] for k in plan.kept if k in state.digests})
        return records, digests

    async def _apply(self, plan: KindPlan, work: pd.DataFrame, state: StateView,
                     token: str | None, marker: RefreshRow | None,
                     forced: set[str]) -> ApplyOutcome:
        records, digests = await asyncio.to_thread(self._records, plan, work, state)
        if self.run.kind.field_values:
            touched = {*plan.field_creates, *plan.field_edits, *plan.field_deletes,
                       *plan.value_sets}
            out = await apply_fields(self.run, touched, records, digests,
                                     allow_delete=bool(plan.field_deletes), force=forced)
        elif plan.strategy == "refresh":
            keys = [k for chunk in plan.chunks for k in chunk]
            out = await apply_refresh(self.run, keys, records, digests, marker)
            self._window(out, marker)
        else:
            creates = [k for k in plan.diff.creates if k not in set(plan.deferred)]
            return await apply_targeted(self.run, plan.diff.edited_keys, creates, plan.deletes,
                                        records, digests, token)
        if out.completed:
            self._count(plan)
        return out

    def _window(self, out: ApplyOutcome, marker: RefreshRow | None) -> None:
        """Finishing a refresh an earlier run left open: how long a partial set was live."""
        if out.completed and marker is not None:
            window = (clock.utcnow() - clock.as_utc(marker.started_at)).total_seconds()
            self.run.result.partial_window_seconds = round(window, 3)

    def _count(self, plan: KindPlan) -> None:
        bad = self.run.rejected_keys
        result = self.run.result
        result.created += sum(1 for k in plan.diff.creates if k not in bad)
        result.edited += sum(1 for e in plan.diff.edits if e.key not in bad)
        result.deleted += len(plan.deletes)
