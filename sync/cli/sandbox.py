"""``icsync sandbox``: serve a local iCompleat sandbox of the API contract until Ctrl-C.

The key comes from ``--api-key-file``, ``--api-key`` or ``$ICSYNC_API_KEY`` and is never printed:
the copy-paste curl line printed at start reads it from the environment (or the file).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from connectors.icompleat.routes import API_VERSION, ROUTES
from connectors.icompleat.sandbox.core import DEFAULT_TOKEN_TTL
from connectors.icompleat.sandbox.server import serve
from connectors.icompleat.sandbox.webhooks import DEFAULT_TIMEOUT
from sync.foundation.errors import ConfigError, ExitCode
from sync.foundation.secrets import REDACTOR, Secret, load_secret

KEY_ENV = "ICSYNC_API_KEY"
WEBHOOK_TOKEN_ENV = "ICSYNC_WEBHOOK_TOKEN"  # noqa: S105 (the variable's name, not a token)


ADMIN_INTRO = """\
admin API (loopback clients only, no key; JSON bodies and answers; /_sandbox and /_sandbox/
answer alike). For example, approve a transaction so `icsync poll` posts it:
  curl -s -X POST http://127.0.0.1:8080/_sandbox/transactions/TENANT/COMPANY \\
       -d '{"Type": "INV", "Title": "Office chairs", "References": {"Supplier": "S00001"}}'
  curl -s -X POST http://127.0.0.1:8080/_sandbox/transactions/TENANT/ID/approve
  curl -s -X PUT http://127.0.0.1:8080/_sandbox/faults/suppliers.list -d '{"error_rate": 0.3}'
endpoints:
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the sandbox's options."""
    from connectors.icompleat.sandbox.admin import admin_help

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = ADMIN_INTRO + admin_help()
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    parser.add_argument("--tenant-id", required=True, help="the tenant GUID clients use")
    parser.add_argument("--tenant-name", default=None, help="the tenant's display name")
    parser.add_argument("--company-id", action="append", required=True, dest="company_ids",
                        metavar="ID", help="a company GUID (repeat for several)")
    parser.add_argument("--api-key", default=None, help=f"the security key (prefer "
                        f"--api-key-file or ${KEY_ENV}: arguments show in process lists)")
    parser.add_argument("--api-key-file", type=Path, default=None, help="file holding the key")
    parser.add_argument("--db", type=Path, default=None,
                        help="SQLite file to keep the data in across restarts (default: memory)")
    parser.add_argument("--webhook-url", default=None,
                        help="push approved transactions (all types) to this URL")
    parser.add_argument("--webhook-token", default=None,
                        help=f"token sent with each push (or ${WEBHOOK_TOKEN_ENV})")
    parser.add_argument("--webhook-timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds before an unanswered push is a posting failure")
    parser.add_argument("--token-ttl", type=float, default=DEFAULT_TOKEN_TTL,
                        help="seconds a continuation token stays valid after its last use")


def _api_key(args: argparse.Namespace) -> Secret:
    key = load_secret(key="--api-key", inline=args.api_key, file=args.api_key_file,
                      credential="icompleat_api_key", env=KEY_ENV)
    if key is None:
        raise ConfigError(f"no security key: pass --api-key-file FILE or set ${KEY_ENV}",
                          key="--api-key")
    REDACTOR.add(key.reveal())
    return key


def _webhook_token(args: argparse.Namespace) -> Secret | None:
    if not args.webhook_url:
        return None
    token = load_secret(key="--webhook-token", inline=args.webhook_token, file=None,
                        credential="webhook_token", env=WEBHOOK_TOKEN_ENV)
    if token is None:
        raise ConfigError(f"--webhook-url needs a token: --webhook-token or ${WEBHOOK_TOKEN_ENV}",
                          key="--webhook-token")
    REDACTOR.add(token.reveal())
    return token


def curl_example(url: str, tenant_id: str, key: Secret, args: argparse.Namespace) -> str:
    """A curl line listing the companies, reading the key from the environment or its file."""
    if args.api_key_file is not None:
        key_ref = f"$(cat {shlex.quote(str(args.api_key_file))})"
    else:
        key_ref = f"${KEY_ENV}"
    base = url.replace("://0.0.0.0:", "://127.0.0.1:")
    path = ROUTES["companies"].render(tenantId=tenant_id)
    return (f'curl -s -H "{ROUTES.headers["version"]}: {API_VERSION}" '
            f'-H "{ROUTES.headers["key"]}: {key_ref}" {base}{path}')


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM."""
    key = _api_key(args)
    where = f"data in {args.db}" if args.db else "data in memory"

    def announce(url: str) -> None:
        print(f"iCompleat sandbox on {url} (tenant {args.tenant_id}, companies "
              f"{', '.join(args.company_ids)}; {where}; admin API under {url}/_sandbox/)")
        if key.origin.startswith("configuration"):
            print(f"# set the key in your shell first: export {KEY_ENV}=... (it is not printed)")
        print(curl_example(url, args.tenant_id, key, args), flush=True)

    try:
        serve(announce, tenant_id=args.tenant_id, company_ids=args.company_ids, api_key=key,
              db=args.db, host=args.host, port=args.port, token_ttl=args.token_ttl,
              webhook_url=args.webhook_url, webhook_token=_webhook_token(args),
              webhook_timeout=args.webhook_timeout, tenant_name=args.tenant_name)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}",
                          key="--port") from None
    print("iCompleat sandbox stopped", flush=True)
    return int(ExitCode.OK)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sync.cli.sandbox``: the same command without loading the others."""
    parser = argparse.ArgumentParser(prog="icsync sandbox", description=__doc__)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except ConfigError as exc:
        print(f"icsync sandbox: {REDACTOR(str(exc))}", file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":
    sys.exit(main())
