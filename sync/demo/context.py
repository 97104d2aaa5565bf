"""What the tour's chapters share: the demo tenant, the sandbox, the console and the results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from connectors.icompleat.sandbox import SandboxServer
from sync.console.progress import print_results
from sync.foundation.config import Config
from sync.foundation.outcomes import worst
from sync.reference.engine import CompanyResult
from sync.reference.run import sync_companies

TENANT_ID = "5e0d7c1a-2b3f-4a6e-9c8d-1f2e3a4b5c6d"
COMPANY_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


@dataclass
class DemoContext:
    """What the chapters share: where things are, the sandbox, the console and the results."""

    workdir: Path
    console: Console
    fast: bool
    sandbox: SandboxServer
    erp: Path
    config_path: Path
    config: Config
    kept: bool = False
    results: dict[str, list[CompanyResult]] = field(default_factory=dict)

    def heading(self, title: str, text: str) -> None:
        """A chapter's heading and the paragraph explaining it."""
        self.console.print()
        self.console.print(Panel(text, title=f"[bold]{title}[/]", title_align="left",
                                 border_style="cyan"))

    def command(self, *args: str) -> None:
        """Show the command line a chapter is equivalent to."""
        self.console.print(f"[dim]$ icsync {' '.join(args)}[/]", highlight=False)

    async def sync(self, label: str, *, dry_run: bool = False,
                   limit: int = 8) -> list[CompanyResult]:
        """Run a sync as ``icsync sync`` does (the same engine call, in process) and print its
        plan or summary."""
        self.command("sync", "--config", str(self.config_path), *(["--dry-run"] * dry_run))
        results = await sync_companies(self.config, self.config.settings.companies,
                                       dry_run=dry_run)
        print_results(results, self.console, dry_run=dry_run, limit=limit)
        code = worst(r.outcome for r in results).exit_code
        self.console.print(f"exit code [bold]{int(code)}[/] ({code.name.lower()})")
        self.results[label] = results
        return results

    def remote_count(self, kind: str) -> int:
        """How many records iCompleat (the sandbox) holds for ``kind``."""
        return len(self.sandbox.state.records(TENANT_ID, COMPANY_ID, kind))


