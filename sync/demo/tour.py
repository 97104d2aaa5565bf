"""The guided tour: a list of CHAPTERS, each a function of one shared
:class:`~sync.demo.context.DemoContext`; adding a chapter is one line in that list.

Everything is written under one directory: the sample ERP, the configuration file, its key file
and the state database.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from sync.demo import data as demo_data
from sync.demo.context import COMPANY_ID, TENANT_ID, DemoContext
from sync.demo.operations import chapter_operations
from sync.demo.transactions import chapter_transactions
from sync.foundation.files import write_private
from sync.foundation.tomlout import toml_value

Chapter = Callable[[DemoContext], Awaitable[None]]


async def chapter_setup(ctx: DemoContext) -> None:
    """Show what was created: the sandbox, the ERP and the configuration."""
    counts = demo_data.table_counts(ctx.erp)
    ctx.heading("1. The pieces", (
        f"A local iCompleat sandbox is listening on {ctx.sandbox.url} (the real API contract: "
        "paging, continuation tokens, validation, errors).\n"
        f"A sample ERP database: {ctx.erp}\n  " + ", ".join(f"{n} {t}" for t, n in counts.items())
        + f"\nThe configuration icsync runs with: {ctx.config_path}\n"
        "(the security key sits in a file next to it; it never appears in output or logs)."))


async def chapter_plan(ctx: DemoContext) -> None:
    """A dry run: what the first sync would send, and the rows it sets aside."""
    ctx.heading("2. The plan", (
        "icsync reads every kind from the ERP, validates it, compares it with what iCompleat "
        "holds (nothing yet) and prints the cheapest set of calls. --dry-run sends nothing."))
    await ctx.sync("plan", dry_run=True)


async def chapter_first_sync(ctx: DemoContext) -> None:
    """The first real sync: complete sets in chunks of 100."""
    ctx.heading("3. The first sync", (
        "Now for real: kinds in dependency order (currencies and tax codes first, suppliers "
        "last), each as a complete set in chunks of 100 with continuation tokens. Every call is "
        "journaled before it is sent, so a crash anywhere resumes without duplicates."))
    await ctx.sync("first")
    ctx.console.print(f"iCompleat now holds {ctx.remote_count('suppliers')} suppliers.")


async def chapter_changes(ctx: DemoContext) -> None:
    """Change the ERP, then sync again: a small, targeted plan and one rejected row."""
    changes = demo_data.apply_changes(ctx.erp)
    lines = "\n".join(f"  {c.key}: {c.what}" for c in changes)
    ctx.heading("4. Changes in the ERP", (
        f"Someone edits the ERP:\n{lines}\nThe next run sends only the changes (one call per "
        "edit and delete, the new supplier appended to the live set) and quarantines the row "
        "iCompleat could not take, with the reason. The rest still lands."))
    await ctx.sync("changes-plan", dry_run=True)
    await ctx.sync("changes")


async def chapter_guard(ctx: DemoContext) -> None:
    """The safety guard: an ERP export that came back empty deletes nothing."""
    before = ctx.remote_count("suppliers")
    moved = demo_data.empty_suppliers(ctx.erp)
    ctx.heading("5. The safety guard", (
        f"The ERP's supplier table comes back empty ({moved} rows gone: a failed export, a "
        "wrong filter). Deleting every supplier in iCompleat would be a disaster, so the guard "
        "blocks the run: exit code 3, nothing deleted, and it says how to override."))
    try:
        await ctx.sync("guard")
    finally:
        demo_data.restore_suppliers(ctx.erp)
    after = ctx.remote_count("suppliers")
    ctx.console.print(f"Suppliers in iCompleat before: {before}, after: {after}.")


async def chapter_end(ctx: DemoContext) -> None:
    """Where to go next."""
    keep = ("The files stay in " + str(ctx.workdir)) if ctx.kept else (
        "The files were in a temporary directory, removed now; run `icsync demo --workdir DIR` "
        "to keep them")
    ctx.heading("Done", (
        f"{keep}. The configuration file shows every setting the tour used; "
        "config/example.toml explains them all. The same shape runs the daemon (icsync run) "
        "against your own tenant and ERP."))


CHAPTERS: list[Chapter] = [
    chapter_setup,
    chapter_plan,
    chapter_first_sync,
    chapter_changes,
    chapter_guard,
    chapter_transactions,
    chapter_operations,
    chapter_end,
]


def config_text(ctx_dir: Path, url: str, erp: Path, key_file: Path) -> str:
    """The demo's configuration file, commented."""
    source = demo_data.source_settings(erp)
    lines = [
        "# icsync demo configuration (written by `icsync demo`).",
        "[state]", f"url = {json.dumps('sqlite:///' + str(ctx_dir / 'state.db'))}", "",
        "[icompleat]", f"base_url = {json.dumps(url)}   # the local sandbox",
        f"tenant_id = {json.dumps(TENANT_ID)}", f"api_key_file = {json.dumps(str(key_file))}",
        "requests_per_minute = 0   # the sandbox has no quota; a real tenant: 50", "",
        "[sources.erp]", 'type = "sql"', f"url = {json.dumps(source['url'])}",
    ]
    for kind, spec in source["kinds"].items():
        lines += ["", f"[sources.erp.kinds.{kind}]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in spec.items()]
    lines += ["", "[sinks.erp]", 'type = "sql"', f"url = {json.dumps(source['url'])}", "",
              "[[companies]]", 'name = "demo"', f"company_id = {json.dumps(COMPANY_ID)}",
              'source = "erp"', 'sink = "erp"', ""]
    return "\n".join(lines)


def prepare(workdir: Path, url: str, key: str, fast: bool) -> tuple[Path, Path]:
    """Create the ERP, the key file and the configuration under ``workdir``."""
    erp = demo_data.create_erp(workdir / "erp.db", suppliers_count=150 if fast else 600)
    key_file = workdir / "icompleat_api_key"
    write_private(key_file, (key + "\n").encode("utf-8"))  # 0600 from its first byte
    path = workdir / "icsync.toml"
    path.write_text(config_text(workdir, url, erp, key_file), encoding="utf-8")
    return erp, path


async def tour(ctx: DemoContext) -> None:
    """Every chapter in order."""
    for chapter in CHAPTERS:
        await chapter(ctx)


def as_told(ctx: DemoContext) -> bool:
    """The outcomes the narration promises: ok, partial (one rejected row), blocked."""
    expect = {"first": "ok", "changes": "partial", "guard": "blocked"}
    return all(ctx.results[k][0].outcome == v for k, v in expect.items() if k in ctx.results)
