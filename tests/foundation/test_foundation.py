"""The foundation: routes table, kinds registry, secrets and configuration."""

from pathlib import Path

import pytest

from connectors.icompleat.routes import ROUTES, build_routes
from sync.foundation.config import load_config, parse_settings
from sync.foundation.entities import KINDS, in_dependency_order
from sync.foundation.errors import ConfigError, ValidationFailed
from sync.foundation.secrets import Secret, load_secret


def test_render_quotes_segments_and_writes_null() -> None:
    """A code with a slash stays one segment and a None parameter becomes NULL."""
    path = ROUTES["transactions.list"].render(
        tenantId="T", pageNumber=1, companyId="a/b", userId=None, status="APPR",
        transactionType=None)
    assert path == "/api/transactions/T/1/a%2Fb/NULL/APPR/NULL"


def test_resolve_accepts_lowercase_null_and_double_slash() -> None:
    """The sandbox side accepts `null` and `//api/...` as the real client sent them."""
    found = ROUTES.resolve("GET", "//api/transaction/T/abc/null")
    assert found is not None
    route, params = found
    assert route.name == "transaction.detail"
    assert params == {"tenantId": "T", "transactionId": "abc", "userId": None}


def test_resolve_tells_routes_apart_by_method() -> None:
    """Custom field detail (GET) and values (POST) share a path."""
    assert ROUTES.resolve("POST", "/api/customfield/T/C/1")[0].name == "customfield.values"  # type: ignore[index]
    assert ROUTES.resolve("GET", "/api/customfield/T/C/1")[0].name == "customfield.detail"  # type: ignore[index]


def test_route_override_and_unknown_override() -> None:
    """A configured path replaces the default; an unknown route name is a config error."""
    table = build_routes({"suppliers.list": {"path": "/v1/s/{tenantId}/{companyId}/{pageNumber}"}})
    rendered = table["suppliers.list"].render(tenantId="t", companyId="c", pageNumber=2)
    assert rendered == "/v1/s/t/c/2"
    with pytest.raises(ConfigError, match=r"icompleat\.routes\.nope"):
        build_routes({"nope": {"path": "/x"}})


def test_every_reference_kind_has_its_routes() -> None:
    """Each kind but custom fields has list, post, edit and delete routes."""
    for kind in KINDS.values():
        if kind.name != "custom_fields":
            for op in ("list", "post", "edit", "delete"):
                assert kind.route(op) in ROUTES


def test_dependency_order() -> None:
    """Currencies and tax codes come before suppliers, custom fields before suppliers."""
    order = in_dependency_order(["suppliers", "custom_fields", "currencies", "tax_codes"])
    assert order == ["currencies", "tax_codes", "custom_fields", "suppliers"]


def test_secret_is_masked_and_remembers_origin(tmp_path: Path) -> None:
    """repr and str never show the value; the origin names the file."""
    key_file = tmp_path / "key"
    key_file.write_text("s3cr3t-value\n")
    secret = load_secret(key="icompleat.api_key", inline=None, file=key_file,
                         credential="icompleat_api_key", env="ICSYNC_TEST_NOPE")
    assert secret is not None
    assert secret.reveal() == "s3cr3t-value"
    assert "s3cr3t" not in repr(secret) + str(secret)
    assert str(key_file) in secret.origin
    assert not Secret("")


def test_config_error_names_the_key() -> None:
    """A bad value fails validation with the dotted key in the message."""
    with pytest.raises(ConfigError, match=r"companies\.0\.kinds"):
        parse_settings({"companies": [{"name": "uk", "company_id": "c", "kinds": ["nope"]}]})


def test_http_refused_unless_loopback() -> None:
    """An http:// base URL needs a loopback host or allow_insecure_http."""
    with pytest.raises(ConfigError, match="http://"):
        parse_settings({"icompleat": {"base_url": "http://example.com"}})
    parse_settings({"icompleat": {"base_url": "http://127.0.0.1:8080"}})
    parse_settings({"icompleat": {"base_url": "http://example.com", "allow_insecure_http": True}})


def test_load_config_reads_toml_and_secret_file(tmp_path: Path) -> None:
    """A TOML file with an api_key_file loads, and the key is registered for redaction."""
    (tmp_path / "key").write_text("canary-key-123456")
    cfg = tmp_path / "icsync.toml"
    cfg.write_text(f'[icompleat]\ntenant_id = "t"\napi_key_file = "{tmp_path / "key"}"\n')
    config = load_config(cfg)
    assert config.require_api_key().reveal() == "canary-key-123456"
    assert "canary" not in repr(config)


def test_validation_failed_names_field() -> None:
    """ErrorCode 12's message is mined for the field it names."""
    err = ValidationFailed("x", error_code=12, api_message="Field 'IsoCode' must be 2 letters")
    assert err.field == "IsoCode"
