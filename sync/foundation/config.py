"""Typed configuration: one TOML file, plus secrets from files, systemd credentials or env.

:func:`load_config` validates everything before anything runs; a bad file raises
:class:`sync.foundation.errors.ConfigError` naming the key (``companies.0.kinds: unknown kind
'foo'``).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sync.foundation.entities import KIND_NAMES, get_kind, in_dependency_order
from sync.foundation.errors import ConfigError
from sync.foundation.presets import resolve_source
from sync.foundation.secrets import REDACTOR, Secret, load_secret


class _Model(BaseModel):
    # inf and nan are refused for every number: a timeout of inf is no bound at all.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


DAY = 86_400.0
# RFC 9110 token: what a header NAME may hold; a VALUE may hold no control character (CR, LF).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[^\x00-\x1f\x7f]+")


def header_name(value: str) -> str:
    """A valid, non-empty HTTP header name; ValueError otherwise."""
    if not _HEADER_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not an HTTP header name (letters, digits, '-')")
    return value


# SQLAlchemy's URL shape: dialect[+driver]://[user[:password]@][host][:port][/database][?query]
_DB_URL = re.compile(
    r"^(?P<name>[\w+]+)://(?:(?P<user>[^:/@]*)(?::(?P<password>[^@]*))?@)?"
    r"(?P<host>\[[^\]]*\]|[^/:?]*)(?::(?P<port>[^/?]*))?(?:/(?P<database>[^?]*))?(?:\?.*)?$",
    re.S)


def database_url(value: str) -> str:
    """A database URL in SQLAlchemy's shape, whose port (if any) is a number 1..65535;
    ValueError naming what is wrong (the password masked) otherwise."""
    found = _DB_URL.match(value)
    port = found.group("port") if found else None
    problem = None if found else "not dialect://user@host:port/database"
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        problem = f"port {port[:20]!r} is not a number 1..65535"
    if problem:
        shown = re.sub(r"//[^@/]*@", "//***@", value)
        raise ValueError(f"{shown!r} is not a database URL such as "
                         f"postgresql+psycopg://user@host:5432/db ({problem})")
    return value


def _unknown_kinds(table: dict[str, Any], *, allowed: tuple[str, ...] = ()) -> dict[str, Any]:
    unknown = [k for k in table if k not in KIND_NAMES and k not in allowed]
    if unknown:
        raise ValueError(f"unknown kinds {unknown}; known: {list(KIND_NAMES)}")
    return table


class StateConfig(_Model):
    """Where the state database lives and how long a lease lasts."""

    url: str = "sqlite:///icsync-state.db"
    password_file: Path | None = None
    lease_seconds: float = Field(30.0, gt=0, le=DAY)
    # Bounds connecting, waiting for a lock and each statement (a hung state DB ends the run).
    timeout_seconds: float = Field(30.0, gt=0, le=DAY)

    _url = field_validator("url")(classmethod(lambda cls, v: database_url(v)))


class IcompleatConfig(_Model):
    """The iCompleat tenant, credentials and client limits."""

    base_url: str = "https://api-eu1.compleat.online"
    tenant_id: str = ""
    # Sent in the user segment of the documented tax and currency lists (NULL when unset).
    user_id: str | None = None
    api_key: str | None = Field(None, repr=False)
    api_key_file: Path | None = None
    requests_per_minute: int = Field(50, ge=0, le=1_000_000)
    max_concurrency: int = Field(4, ge=1, le=1000)
    timeout_seconds: float = Field(30.0, gt=0, le=DAY)
    allow_insecure_http: bool = False
    max_attempts: int = Field(5, ge=1, le=20)
    backoff_seconds: float = Field(1.0, ge=0, le=DAY)
    max_backoff_seconds: float = Field(60.0, ge=0, le=DAY)
    routes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    # A call that answered 404/405 is avoided this long, then tried again (default a day).
    reprobe_seconds: float = Field(86_400.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://api-eu1.compleat.online")
        if parts.username or parts.password or parts.query:
            raise ValueError("must not carry credentials or a query string")
        return value.rstrip("/")

    @field_validator("user_id")
    @classmethod
    def _user_guid(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            raise ValueError("must be a GUID such as 1b4e28ba-2fa1-11d2-883f-0016d3cca427 "
                             "(a user's Id in iCompleat), or left out") from None

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for key, value in headers.items():
            try:
                header_name(value)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return headers

    @model_validator(mode="after")
    def _route_paths(self) -> IcompleatConfig:
        for name, changes in self.routes.items():
            if "path" in changes:
                changes["path"] = route_path(changes["path"], self.base_url, f"routes.{name}.path")
        return self

    @model_validator(mode="after")
    def _insecure(self) -> IcompleatConfig:
        if urlsplit(self.base_url).scheme == "http" and not (
            self.allow_insecure_http or is_loopback_url(self.base_url)
        ):
            raise ValueError("base_url: http:// is refused for a non-loopback host; use https "
                             "or set allow_insecure_http = true")
        return self


def route_path(path: Any, base_url: str, where: str) -> str:
    """A route override's path: a path, or a URL of base_url's own origin (reduced to its path).

    Anything else (another host, another scheme or port, ``//host/...``) would send the API key
    somewhere else, so it is refused.
    """
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"{where}: must be a path such as /api/suppliers/{{tenantId}}")
    parts, base = urlsplit(path), urlsplit(base_url)
    if parts.scheme or parts.netloc:
        same = (parts.scheme, parts.hostname, parts.port) == (base.scheme, base.hostname,
                                                               base.port)
        if not same:
            raise ValueError(f"{where}: {path!r} points outside base_url {base_url}; a route "
                             "override may only change the path (the API key goes with it)")
        path = parts.path
    if not path.startswith("/") or parts.query or parts.fragment or re.search(r"[\s\\]", path):
        raise ValueError(f"{where}: {path!r} must be a path starting with / and without a "
                         "query, fragment, space or backslash")
    return str(path)


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
    # "strict": undecodable bytes stop the read naming the line and the encoding to set;
    # "quarantine": they are kept as lone surrogates and their rows rejected as bad_encoding.
    encoding_errors: Literal["strict", "quarantine"] = "strict"
    delimiter: str = ","
    sheet: str | int | None = None
    # iCompleat field <- a column, a "{template}", a fallback list or a { value = ... } constant.
    mapping: dict[str, str | list[str] | dict[str, Any]] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)
    trim: bool = True
    # SQL-like filter on the source's own columns: Status <> 'Inactive' AND Balance >= 0
    where: str | None = None
    # For currency lists without a base flag: this code is the base (IsBase, Rate 1).
    base_currency: str | None = Field(None, min_length=3, max_length=3)
    # A ready-made mapping for an ERP's own columns (see sync.foundation.presets).
    preset: str | None = None


class SqlSourceConfig(_Model):
    """Any SQLAlchemy database as a source."""

    type: Literal["sql"]
    url: str
    password_file: Path | None = None
    timeout_seconds: float = Field(60.0, gt=0, le=DAY)
    arrow: bool = True  # read SQLite and PostgreSQL through ADBC into Arrow where it can
    kinds: dict[str, KindSourceConfig] = Field(default_factory=dict)

    _url = field_validator("url")(classmethod(lambda cls, v: database_url(v)))
    _kinds = field_validator("kinds")(classmethod(lambda cls, v: _unknown_kinds(v)))


class FilesSourceConfig(_Model):
    """A directory of exports (CSV, Excel, JSON, Parquet), one file per kind."""

    type: Literal["files"]
    directory: Path
    kinds: dict[str, KindSourceConfig] = Field(default_factory=dict)

    _kinds = field_validator("kinds")(classmethod(lambda cls, v: _unknown_kinds(v)))


class MemorySourceConfig(_Model):
    """In-memory rows, for tests and the demo."""

    type: Literal["memory"]
    kinds: dict[str, KindSourceConfig] = Field(default_factory=dict)
    rows: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)

    _kinds = field_validator("kinds", "rows")(classmethod(lambda cls, v: _unknown_kinds(v)))


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
    timeout_seconds: float = Field(60.0, gt=0, le=DAY)
    # Added for connectors.sql; see that module's docstring for each one's meaning.
    journal_digits: int = Field(8, ge=1, le=30)
    unique_index: bool = True
    serialise: bool = True
    header_columns: dict[str, str] = Field(default_factory=dict)
    line_columns: dict[str, str] = Field(default_factory=dict)
    required_supplier_table: str | None = None
    required_supplier_column: str = "code"
    # How a transaction's supplier code is found there: "ignore_case" (case and surrounding
    # spaces ignored, as reference codes are matched) or "exact".
    supplier_match: Literal["ignore_case", "exact"] = "ignore_case"
    required_fields: list[str] = Field(default_factory=list)


class FilesSinkConfig(_Model):
    """A drop folder an ERP import picks documents up from."""

    type: Literal["files"]
    directory: Path
    format: Literal["json", "csv"] = "json"
    journal_prefix: str = "IC"
    processed_dir: str | None = "processed"
    required_fields: list[str] = Field(default_factory=list)
    # CSV only: a cell starting with = + - @ tab or CR is written with a leading ' (OWASP), so a
    # spreadsheet shows it as text instead of running it; false for an ERP that needs raw values.
    neutralise_formulas: bool = True


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
    # The poll reads only the tail of each approved list; a full read (a sweep), which catches
    # anything the tail could miss, is made when the last one is this many hours old.
    transactions_sweep_hours: float = Field(24.0, gt=0)
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
    # Bound parameters for this company's source queries, beside :company and :company_id
    # (an ERP numbers its companies its own way: params = { erp_company = 3 }).
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _param_names(cls, params: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted({"company", "company_id"} & set(params))
        if reserved:
            raise ValueError(f"{reserved} are bound by icsync itself; choose other names")
        bad = [n for n in params if not n.isidentifier()]
        if bad:
            raise ValueError(f"parameter names must be identifiers usable as :name, not {bad}")
        return params

    _tables = field_validator("delete_policy", "guard")(
        classmethod(lambda cls, v: _unknown_kinds(v)))

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
    # Text before the token in the header's value, such as "Bearer " (none by default).
    token_prefix: str = ""
    refetch: bool = True
    max_body_bytes: int = Field(1_000_000, gt=0, le=100_000_000)

    _header = field_validator("header")(classmethod(lambda cls, v: header_name(v)))


class ServiceConfig(_Model):
    """The daemon's HTTP server and logs."""

    listen: str = "127.0.0.1:8787"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    failing_runs_unready: int = Field(3, ge=1)
    shutdown_seconds: float = Field(30.0, gt=0, le=3600)
    # A random delay (0..this) before each job's first run, so instances started together
    # (a fleet restart, several companies) do not all call iCompleat in the same second.
    startup_jitter_seconds: float = Field(10.0, ge=0, le=DAY)
    # Bounds of the HTTP server (see sync.daemon.http): open connections at most (fewer when
    # the descriptor limit is lower), how long a request's headers and a body may take to
    # arrive, and how long an idle keep-alive connection is kept.
    max_connections: int = Field(512, ge=8, le=100_000)
    header_timeout_seconds: float = Field(10.0, gt=0, le=3600)
    body_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    keepalive_seconds: float = Field(5.0, gt=0, le=3600)
    # The operator console at "/" (read-only), and its retry/resolve buttons (need a token).
    console: bool = False
    console_actions: bool = False
    console_token_file: Path | None = None

    @model_validator(mode="after")
    def _console(self) -> ServiceConfig:
        if self.console_actions and not self.console:
            raise ValueError("console_actions: needs console = true")
        return self


class AlertsConfig(_Model):
    """Alerts to people (e-mail, chat, webhooks) through apprise URLs; each condition can be
    switched off. A condition sends one message when it starts and one when it clears."""

    urls_file: Path | None = None
    guard_block: bool = True
    failing_runs: bool = True
    failing_runs_count: int = Field(3, ge=1)
    credentials: bool = True
    quarantine: bool = True
    journal_mismatch: bool = True
    lease_lost: bool = True
    capability: bool = True
    ledger_backlog: bool = True
    ledger_backlog_minutes: float = Field(60.0, gt=0)
    # Across every instance sharing the state DB; messages over the limit wait their turn.
    max_per_hour: int = Field(30, ge=1)
    send_timeout_seconds: float = Field(10.0, gt=0, le=120)
    retry_seconds: float = Field(60.0, gt=0)
    check_seconds: float = Field(60.0, gt=0)


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
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)

    @model_validator(mode="before")
    @classmethod
    def _presets(cls, data: Any) -> Any:
        """Merge each source's presets into its kinds' tables (see sync.foundation.presets)."""
        if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
            return data
        sources = {}
        for name, table in data["sources"].items():
            if not isinstance(table, dict):
                sources[name] = table
                continue
            try:
                sources[name] = resolve_source(table)
            except ValueError as exc:
                raise ConfigError(str(exc), key=f"sources.{name}.preset") from None
        return {**data, "sources": sources}

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
        self.alert_urls: tuple[Secret, ...] = _alert_urls(settings.alerts)
        self.console_token: Secret | None = _console_token(settings.service)
        for secret in (self.api_key, *self.webhook_tokens, self.console_token):
            if secret:
                REDACTOR.add(secret.reveal())
        for url in self.alert_urls:
            for part in url_secrets(url.reveal()):
                REDACTOR.add(part)

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
        except UnicodeDecodeError:
            raise ConfigError(f"{webhook.tokens_file} is not UTF-8 text",
                              key="webhook.tokens_file") from None
        tokens += [Secret(s.strip(), origin=f"file {webhook.tokens_file}")
                   for s in lines if s.strip()]
    secret = load_secret(key="webhook.tokens", inline=None, file=None,
                         credential="webhook_tokens", env="ICSYNC_WEBHOOK_TOKEN")
    if secret is not None:
        tokens += [Secret(s.strip(), origin=secret.origin)
                   for s in secret.reveal().splitlines() if s.strip()]
    return tuple(tokens)


def _alert_urls(alerts: AlertsConfig) -> tuple[Secret, ...]:
    """One apprise URL a line from ``[alerts] urls_file`` or the credential ``alert_urls``;
    blank lines and ``#`` comments skipped."""
    if alerts.urls_file is not None:
        try:
            text = alerts.urls_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise ConfigError(f"cannot read {alerts.urls_file}: {why}",
                              key="alerts.urls_file") from None
        origin = f"file {alerts.urls_file}"
    else:
        secret = load_secret(key="alerts.urls_file", inline=None, file=None,
                             credential="alert_urls", env="ICSYNC_ALERT_URLS")
        if secret is None:
            return ()
        text, origin = secret.reveal(), secret.origin
    lines = [line.strip() for line in text.splitlines()]
    return tuple(Secret(line, origin=origin) for line in lines
                 if line and not line.startswith("#"))


def url_secrets(url: str) -> list[str]:
    """The parts of a channel URL to mask: the whole URL, its user info, path and query values
    (chat webhooks carry their token in the path)."""
    parts = urlsplit(url)
    found = [url, parts.netloc.rpartition("@")[0], parts.password or "",
             *(p for p in parts.path.split("/") if len(p) >= 8)]
    for pair in parts.query.split("&"):
        found.append(pair.partition("=")[2])
    return [p for p in found if len(p) >= 4]


def _console_token(service: ServiceConfig) -> Secret | None:
    """The console's action token; ConfigError when actions are on and there is none."""
    token = load_secret(key="service.console_token", inline=None,
                        file=service.console_token_file, credential="console_token",
                        env="ICSYNC_CONSOLE_TOKEN")
    if service.console_actions and (token is None or len(token.reveal()) < 16):
        raise ConfigError("console_actions needs a token of at least 16 characters: set "
                          "service.console_token_file, a systemd credential 'console_token' or "
                          "ICSYNC_CONSOLE_TOKEN", key="service.console_token_file")
    return token


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
    except UnicodeDecodeError as exc:
        raise ConfigError(f"configuration {path} is not UTF-8 text (byte 0x"
                          f"{exc.object[exc.start]:02x} at offset {exc.start}); save it as "
                          f"UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return Config(parse_settings(data), path=path)


def selected_kinds(company: CompanyConfig, kinds: Sequence[str] | None) -> list[str]:
    """The company's kinds, or the requested subset, in dependency order."""
    if not kinds:
        return list(company.kinds)
    for name in kinds:
        try:
            get_kind(name)
        except ValueError as exc:
            raise ConfigError(str(exc), key="--kind") from None
    missing = [k for k in kinds if k not in company.kinds]
    if missing:
        raise ConfigError(f"company {company.name!r} does not sync {missing}; it syncs "
                          f"{company.kinds}", key="--kind")
    return in_dependency_order(dict.fromkeys(kinds))
