"""The `salesbot` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from salesbot.kit.logging import configure_logging
from salesbot.settings import Settings, get_settings


def _with_service_urls(settings: Settings, *, start_embedded: bool) -> Settings:
    """Fill DATABASE_URL/REDIS_URL from the embedded dev stack of SALESBOT_DATA_DIR when they are unset."""
    if settings.database_url and settings.redis_url:
        return settings
    from salesbot.devstack import DevStack

    stack = DevStack(settings.data_dir, database_url=settings.database_url, redis_url=settings.redis_url)
    urls = stack.start() if start_embedded else stack.discover()
    if urls is None:
        sys.exit(
            "DATABASE_URL and REDIS_URL are not set and no embedded services are running for "
            f"{settings.data_dir}: set them, or start everything with `salesbot dev`"
        )
    return settings.model_copy(update={"database_url": urls.database_url, "redis_url": urls.redis_url})


def cmd_dev(args: argparse.Namespace) -> int:
    from salesbot.dev import run_dev

    return run_dev(get_settings(), host=args.host, port=args.port)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from salesbot.app import create_app

    settings = _with_service_urls(get_settings(), start_embedded=False)
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from salesbot.worker import run_worker

    run_worker(_with_service_urls(get_settings(), start_embedded=False), burst=args.burst)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from salesbot.migrate import upgrade

    settings = get_settings()
    settings = _with_service_urls(settings, start_embedded=not settings.database_url)
    configure_logging(settings.log_level)
    upgrade(settings.database_url, args.revision)
    print(f"database migrated to {args.revision}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salesbot", description="WhatsApp sales assistant")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="run the whole product locally (embedded PostgreSQL and Redis)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(handler=cmd_dev)

    serve = commands.add_parser("serve", help="run the HTTP API (webhooks, REST API, admin)")
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104  (a server process behind a load balancer)
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1", help="proxies trusted for X-Forwarded-*")
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="run a background worker (conversation turns, deliveries)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(handler=cmd_worker)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(handler=cmd_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
