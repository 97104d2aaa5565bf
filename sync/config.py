"""Typed configuration: one TOML file, plus secrets from files, systemd credentials or env.

:func:`load_config` validates everything before anything runs; a bad file raises
:class:`sync.errors.ConfigError` naming the key (``companies.0.kinds: unknown kind 'foo'``).
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sync.entities import KIND_NAMES, in_dependency_order
from sync.errors import ConfigError
from sync.secrets import REDACTOR, Secret, load_secret


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StateConfig(_Model):
    """Where the state database lives and how long a lease lasts."""

    url: str = "sqlite:///icsync-state.db"
    password_file: Path | None = None
    lease_seconds: float = Field(30.0, gt=0)
    # Bounds connecting, waiting for a lock and each statement (a hung state DB ends the run).
    timeout_seconds: float = Field(30.0, gt=0)


class IcompleatConfig(_Model):
    """The iCompleat tenant, credentials and client limits."""

    base_url: str = "https://api-eu1.compleat.online"
    tenant_id: str = ""
    api_key: str | None = Field(None, repr=False)
    api_key_file: Path | None = None
    requests_per_minute: int = Field(50, ge=0)
    max_concurrency: int = Field(4, ge=1)
    timeout_seconds: float = Field(30.0, gt=0)
    allow_insecure_http: bool = False
    max_attempts: int = Field(5, ge=1, le=20)
    backoff_seconds: float = Field(1.0, ge=0)
    max_backoff_seconds: float = Field(60.0, ge=0)
    routes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://api-eu1.compleat.online")
        if parts.username or parts.password or parts.query:
            raise ValueError("must not carry credentials or a query string")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _insecure(self) -> IcompleatConfig:
        if urlsplit(self.base_url).scheme == "http" and not (
            self.allow_insecure_http or is_loopback_url(self.base_url)
        ):
            raise ValueError("base_url: http:// is refused for a non-loopback host; use https "
                             "or set allow_insecure_http = true")
        return self


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is localhost or a loopback address."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class KindSourceConfig(_Model):
    """How one kind is read from a source, and mapped to canonical names."""

    query: str | None = None
    table: str | None = None
    file: str | None = None
    format: Literal["csv", "excel", "json", "parquet"] | None = None
    encoding: str = "utf-8"
    delimiter: str = ","
    sheet: str | int | None = None
    mapping: dict[str, str] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)
    trim: bool = True


class SqlSourceConfig(_Model):
    """Any SQLAlchemy database as a source."""

    type: Literal["sql"]
    url: str
    password_file: Path | None = None
    timeout_seconds: float = Field(60.0, gt=0)
    arrow: bool = True  # read SQLite and PostgreSQL through ADBC into Arrow where it can
    kinds: dict[str, KindSourceConfig] = Field(default_factory=dict)


class FilesSourceConfig(_Model):
    """A directory of exports (CSV, Excel, JSON, Parquet), one file per kind."""

    type: Literal["files"]
    directory: Path
    kinds: dict[str, KindSourceConfig] = Field(default_factory=dict)


class MemorySourceConfig(_Model):
    """In-memory rows, for tests and the demo."""

    type: Literal["memory"]
    kinds: dict[str, KindSourceConfig] = Field(default_factory=dict)
    rows: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)


SourceConfig = Annotated[
    SqlSourceConfig | FilesSourceConfig | MemorySourceConfig, Field(discriminator="type")
]


class SqlSinkConfig(_Model):
    """Any SQLAlchemy database as the ERP sink."""

    type: Literal["sql"]
    url: str
    password_file: Path | None = None
    create_tables: bool = True
    header_table: str = "icsync_transactions"
    lines_table: str = "icsync_transaction_lines"
    journal_sql: str | None = None
    journal_prefix: str = "J"
    timeout_seconds: float = Field(60.0, gt=0)
    # Added for connectors.sql; see that module's docstring for each one's meaning.
    journal_digits: int = Field(8, ge=1, le=30)
    unique_index: bool = True
    serialise: bool = True
    header_columns: dict[str, str] = Field(default_factory=dict)
    line_columns: dict[str, str] = Field(default_factory=dict)
    required_supplier_table: str | None = None
    required_supplier_column: str = "code"
    required_fields: list[str] = Field(default_factory=list)


class FilesSinkConfig(_Model):
    """A drop folder an ERP import picks documents up from."""

    type: Literal["files"]
    directory: Path
    format: Literal["json", "csv"] = "json"
    journal_prefix: str = "IC"
    processed_dir: str | None = "processed"
    required_fields: list[str] = Field(default_factory=list)


class MemorySinkConfig(_Model):
    """An in-memory ERP, for tests and the demo."""

    type: Literal["memory"]
    journal_prefix: str = "M"
    required_fields: list[str] = Field(default_factory=list)


SinkConfig = Annotated[
    SqlSinkConfig | FilesSinkConfig | MemorySinkConfig, Field(discriminator="type")
]


class GuardConfig(_Model):
    """Safety thresholds for destructive changes (a shrink past EITHER limit blocks)."""

    max_shrink_percent: float = Field(10.0, ge=0, le=100)
    max_shrink_rows: int = Field(50, ge=0)


class ValidationConfig(_Model):
    """What a failed VAT or bank-detail check does to a supplier."""

    vat: Literal["reject", "warn", "off"] = "warn"
    bank: Literal["reject", "warn", "off"] = "warn"


class SchedulesConfig(_Model):
    """Each value a 5-field cron expression or an interval such as '30s', '15m', '1h'."""

    reference: str | None = "15m"
    readback: str | None = "0 2 * * *"
    transactions: str | None = "5m"
    timezone: str = "UTC"


TransactionType = Literal["ORD", "INV", "CRD"]
TRANSACTION_TYPES: tuple[TransactionType, ...] = ("ORD", "INV", "CRD")


class CompanyConfig(_Model):
    """One iCompleat company kept in step with one source and posting into one sink."""

    name: str = Field(min_length=1)
    company_id: str = Field(min_length=1)
    source: str | None = None
    sink: str | None = None
    kinds: list[str] = Field(default_factory=lambda: list(KIND_NAMES))
    transaction_types: list[TransactionType] = Field(
        default_factory=lambda: list(TRANSACTION_TYPES))
    delete_policy: dict[str, Literal["delete", "ignore"]] = Field(default_factory=dict)
    drift_policy: Literal["source-wins", "report"] = "source-wins"
    guard: dict[str, GuardConfig] = Field(default_factory=dict)
    schedules: SchedulesConfig = Field(default_factory=SchedulesConfig)

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = [k for k in kinds if k not in KIND_NAMES]
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; known: {list(KIND_NAMES)}")
        return in_dependency_order(dict.fromkeys(kinds))


class WebhookConfig(_Model):
    """The receiver of iCompleat's push of approved transactions."""

    tokens: list[str] = Field(default_factory=list, repr=False)
    tokens_file: Path | None = None
    header: str = "x-compleat-secret-token"
    refetch: bool = True
    max_body_bytes: int = Field(1_000_000, gt=0)


class ServiceConfig(_Model):
    """The daemon's HTTP server and logs."""

    listen: str = "127.0.0.1:8787"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    failing_runs_unready: int = Field(3, ge=1)
    shutdown_seconds: float = Field(30.0, gt=0)
    # A random delay (0..this) before each job's first run, so instances started together
    # (a fleet restart, several companies) do not all call iCompleat in the same second.
    startup_jitter_seconds: float = Field(10.0, ge=0)


class Settings(_Model):
    """The whole configuration file."""

    state: StateConfig = Field(default_factory=StateConfig)
    icompleat: IcompleatConfig = Field(default_factory=IcompleatConfig)
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    sinks: dict[str, SinkConfig] = Field(default_factory=dict)
    companies: list[CompanyConfig] = Field(default_factory=list)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)

    @model_validator(mode="after")
    def _references(self) -> Settings:
        names = [c.name for c in self.companies]
        if len(set(names)) != len(names):
            raise ValueError("companies: each company needs a unique name")
        for i, company in enumerate(self.companies):
            if company.source is not None and company.source not in self.sources:
                raise ValueError(f"companies.{i}.source: no [sources.{company.source}] table")
            if company.sink is not None and company.sink not in self.sinks:
                raise ValueError(f"companies.{i}.sink: no [sinks.{company.sink}] table")
        return self

    def company(self, name: str) -> CompanyConfig:
        """The company called ``name``; ConfigError listing the configured ones otherwise."""
        for company in self.companies:
            if company.name == name:
                return company
        raise ConfigError(f"no company {name!r}; configured: {[c.name for c in self.companies]}",
                          key="--company")

    def guard_for(self, company: CompanyConfig, kind: str) -> GuardConfig:
        """The guard thresholds for one company and kind (company override, else global)."""
        return company.guard.get(kind, self.guard)


class Config:
    """Validated settings plus the secrets they point at (loaded once, masked everywhere)."""

    def __init__(self, settings: Settings, *, path: Path | None = None) -> None:
        self.settings = settings
        self.path = path
        ic = settings.icompleat
        self.api_key: Secret | None = load_secret(
            key="icompleat.api_key", inline=ic.api_key, file=ic.api_key_file,
            credential="icompleat_api_key", env="ICSYNC_API_KEY")
        self.webhook_tokens: tuple[Secret, ...] = _webhook_tokens(settings.webhook)
        for secret in (self.api_key, *self.webhook_tokens):
            if secret:
                REDACTOR.add(secret.reveal())

    def require_api_key(self) -> Secret:
        """The API key; ConfigError saying every place it may come from when there is none."""
        if self.api_key is None:
            raise ConfigError("no iCompleat security key: set icompleat.api_key_file, a systemd "
                              "credential 'icompleat_api_key', or ICSYNC_API_KEY",
                              key="icompleat.api_key")
        return self.api_key

    def __repr__(self) -> str:
        return f"Config(path={self.path!s}, companies={[c.name for c in self.settings.companies]})"


def _webhook_tokens(webhook: WebhookConfig) -> tuple[Secret, ...]:
    tokens = [Secret(t, origin="configuration key webhook.tokens") for t in webhook.tokens if t]
    if webhook.tokens_file is not None:
        try:
            lines = webhook.tokens_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read {webhook.tokens_file}: {exc.strerror}",
                              key="webhook.tokens_file") from None
        tokens += [Secret(s.strip(), origin=f"file {webhook.tokens_file}")
                   for s in lines if s.strip()]
    secret = load_secret(key="webhook.tokens", inline=None, file=None,
                         credential="webhook_tokens", env="ICSYNC_WEBHOOK_TOKEN")
    if secret is not None:
        tokens += [Secret(s.strip(), origin=secret.origin)
                   for s in secret.reveal().splitlines() if s.strip()]
    return tuple(tokens)


def _error_key(error: Any) -> str:
    return ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))


def parse_settings(data: dict[str, Any]) -> Settings:
    """Validate a configuration mapping; ConfigError naming the first bad key."""
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{first['msg']}{more}", key=_error_key(first) or None) from None


def load_config(path: Path) -> Config:
    """Read, validate and resolve the secrets of the TOML file at ``path``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return Config(parse_settings(data), path=path)
