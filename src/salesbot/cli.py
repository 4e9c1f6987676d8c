"""The `salesbot` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from salesbot.devstack import DevStackError
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

    return run_dev(get_settings(), host=args.host, port=args.port, demo_data=not args.no_demo)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from salesbot.app import create_app
    from salesbot.kit.access_log import install_access_log_masking

    settings = _with_service_urls(get_settings(), start_embedded=False)
    configure_logging(settings.log_level, phone_region=settings.phone_default_region)
    install_access_log_masking()
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        access_log=True,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    return 0


def _queue_names(value: str) -> list[str]:
    from salesbot.queues import BY_NAME

    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(names) - set(BY_NAME))
    if not names or unknown:
        named = ", ".join(unknown) or "none"
        raise argparse.ArgumentTypeError(f"unknown queue {named}; choose from {', '.join(BY_NAME)}")
    return names


def cmd_worker(args: argparse.Namespace) -> int:
    from salesbot.worker import run_worker

    settings = _with_service_urls(get_settings(), start_embedded=False)
    run_worker(settings, queue_names=args.queues, burst=args.burst)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from salesbot.migrate import upgrade

    settings = get_settings()
    settings = _with_service_urls(settings, start_embedded=not settings.database_url)
    configure_logging(settings.log_level, phone_region=settings.phone_default_region)
    upgrade(settings.database_url, args.revision)
    print(f"database migrated to {args.revision}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from salesbot.knowledge import commands

    settings = get_settings()
    settings = _with_service_urls(settings, start_embedded=not settings.database_url)
    configure_logging(settings.log_level, phone_region=settings.phone_default_region)
    if args.kind == "products":
        return commands.ingest_products(settings, Path(args.path), full=args.full, strict=args.strict)
    return commands.ingest_knowledge(settings, Path(args.path))


def cmd_reindex(args: argparse.Namespace) -> int:
    from salesbot.knowledge import commands

    settings = get_settings()
    settings = _with_service_urls(settings, start_embedded=not settings.database_url)
    configure_logging(settings.log_level, phone_region=settings.phone_default_region)
    return commands.reindex_all(settings, force=args.force, check=args.check)


def cmd_chat(args: argparse.Namespace) -> int:
    from salesbot.simulator.terminal import default_phone, discover_url, run_chat

    data_dir = get_settings().data_dir
    try:
        phone = args.phone or default_phone(data_dir)
        return run_chat(args.url or discover_url(data_dir), phone, name=args.name, stdin=sys.stdin, out=sys.stdout)
    except ValueError as exc:
        print(f"salesbot chat: {exc}", file=sys.stderr)
        return 2


def cmd_check(args: argparse.Namespace) -> int:
    import asyncio

    from salesbot.health.configuration import check_configuration, failed, render
    from salesbot.resources import open_resources

    settings = get_settings()
    configure_logging("WARNING")
    services_error = ""
    if not (settings.database_url and settings.redis_url):
        from salesbot.devstack import DevStack

        urls = DevStack(settings.data_dir).discover()
        if urls is None:
            services_error = "DATABASE_URL/REDIS_URL unset and no `salesbot dev` running for " + str(settings.data_dir)
        else:
            settings = settings.model_copy(update={"database_url": urls.database_url, "redis_url": urls.redis_url})

    async def run() -> int:
        if services_error:
            items = await check_configuration(settings, None, services_error=services_error)
        else:
            async with open_resources(settings) as resources:
                items = await check_configuration(settings, resources)
        print(f"salesbot check ({settings.env.value})\n{render(items)}")
        problems = failed(items)
        if problems:
            print(f"\n{len(problems)} item(s) need attention: {', '.join(item.name for item in problems)}")
        return 1 if problems else 0

    return asyncio.run(run())


def cmd_webhooks_register(args: argparse.Namespace) -> int:
    import asyncio

    import httpx

    from salesbot.health.configuration import wazzup_webhook_url, webhook_urls
    from salesbot.messaging.base import ProviderError
    from salesbot.messaging.wazzup import WazzupProvider

    settings = get_settings()
    configure_logging("WARNING")
    urls = webhook_urls(settings)
    if not urls:
        print("No provider is configured (WAZZUP_*, TWILIO_* or META_*): nothing to register.")
        return 1

    async def register_wazzup() -> int:
        async with httpx.AsyncClient(timeout=30) as http:
            wazzup = WazzupProvider(settings.wazzup, http)
            wanted = wazzup_webhook_url(settings)
            try:
                current = await wazzup.registered_webhook()
                if current == wanted:
                    print(f"wazzup: already registered ({urls['wazzup']})")
                    return 0
                if current and not args.force:
                    # One webhook per Wazzup account: another integration (a CRM) may own it.
                    print(
                        "wazzup: the account's webhook points to another address; pass --force to replace it",
                        file=sys.stderr,
                    )
                    return 1
                await wazzup.register_webhook(wanted)
            except ProviderError as exc:
                print(f"wazzup: registration failed: {exc.code}: {exc.description}", file=sys.stderr)
                return 1
        print(f"wazzup: registered {urls['wazzup']}")
        return 0

    code = asyncio.run(register_wazzup()) if "wazzup" in urls else 0
    if "twilio" in urls:
        print(
            "twilio: set these on your WhatsApp sender in the Twilio console (Messaging > Senders > WhatsApp senders):"
            f"\n  webhook URL for incoming messages (POST): {settings.public_base_url.rstrip('/')}/webhooks/twilio"
            f"\n  status callback URL (POST): {settings.public_base_url.rstrip('/')}/webhooks/twilio/status"
            "\n  PUBLIC_BASE_URL must be exactly the address Twilio calls: signatures are computed over it."
        )
    if "meta" in urls:
        print(
            "meta: in your Meta app (WhatsApp > Configuration > Webhook), set:"
            f"\n  callback URL: {urls['meta']}"
            "\n  verify token: the value of META_VERIFY_TOKEN"
            "\n  webhook fields: messages, smb_message_echoes (for chats answered in the WhatsApp Business app)"
        )
    return code


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from salesbot.agent.eval.runner import run_eval_command

    settings = get_settings()
    configure_logging("WARNING")
    code, scorecard = run_eval_command(
        settings,
        names=args.scenario,
        scenarios_path=Path(args.scenarios) if args.scenarios else None,
        database_url=args.database_url or None,
        model_name=args.model,
        verbose=args.verbose,
        judge_model=args.judge,
        json_path=Path(args.json) if args.json else None,
    )
    print(scorecard)
    return code


def cmd_users(args: argparse.Namespace) -> int:
    from salesbot.accounts import commands

    settings = get_settings()
    settings = _with_service_urls(settings, start_embedded=not settings.database_url)
    configure_logging("WARNING")
    if args.action == "add":
        return commands.add(settings, args.username, name=args.name, email=args.email, role=args.role, stdin=sys.stdin)
    if args.action == "list":
        return commands.list_users(settings, out=sys.stdout)
    if args.action == "disable":
        return commands.disable(settings, args.username)
    if args.action == "set-password":
        return commands.set_password(settings, args.username, stdin=sys.stdin)
    return commands.token(settings, args.username, out=sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salesbot", description="WhatsApp sales assistant")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="run the whole product locally (embedded PostgreSQL and Redis)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--no-demo", action="store_true", help="do not load the demo catalog into an empty database")
    dev.set_defaults(handler=cmd_dev)

    serve = commands.add_parser("serve", help="run the HTTP API (webhooks, REST API, admin)")
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104  (a server process behind a load balancer)
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1", help="proxies trusted for X-Forwarded-*")
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="run a background worker (conversation turns, deliveries)")
    worker.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    worker.add_argument(
        "--queues",
        type=_queue_names,
        default=None,
        metavar="NAMES",
        help="comma-separated queues to serve, to scale them out separately: turns, messaging, scheduled "
        "(default: all)",
    )
    worker.set_defaults(handler=cmd_worker)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(handler=cmd_migrate)

    evaluate = commands.add_parser(
        "eval", help="run the scripted sales conversations against the configured model and print a scorecard"
    )
    evaluate.add_argument(
        "-k", "--scenario", action="append", default=[], help="only scenarios whose name contains this"
    )
    evaluate.add_argument("--scenarios", help="a scenario YAML file or folder (default: the shipped scenarios)")
    evaluate.add_argument("--model", help="override LLM_MODEL for this run (e.g. offline)")
    evaluate.add_argument(
        "--database-url",
        default="",
        help="run against this migrated database (inside a rolled-back transaction); default: a throwaway one",
    )
    evaluate.add_argument("-v", "--verbose", action="store_true", help="print every turn, not only failures")
    evaluate.add_argument(
        "--judge", metavar="MODEL", help="score each conversation with this LLM (LLM_BASE_URL/LLM_API_KEY endpoint)"
    )
    evaluate.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    evaluate.set_defaults(handler=cmd_eval)

    ingest = commands.add_parser("ingest", help="import the product catalog or knowledge documents")
    ingest_kinds = ingest.add_subparsers(dest="kind", required=True, metavar="WHAT")
    products = ingest_kinds.add_parser("products", help="upsert products by SKU from a CSV, JSON or JSON Lines file")
    products.add_argument("path", metavar="FILE")
    products.add_argument("--full", action="store_true", help="deactivate active products missing from FILE")
    products.add_argument("--strict", action="store_true", help="import nothing if any row is bad (default: skip it)")
    products.set_defaults(handler=cmd_ingest)
    knowledge = ingest_kinds.add_parser("knowledge", help="chunk and index Markdown/text files (a file or a folder)")
    knowledge.add_argument("path", metavar="PATH")
    knowledge.set_defaults(handler=cmd_ingest)

    reindex = commands.add_parser("reindex", help="re-embed products and knowledge for the configured model")
    reindex.add_argument("--force", action="store_true", help="re-embed every row, not only stale ones")
    reindex.add_argument("--check", action="store_true", help="only report; exit 1 when a reindex is needed")
    reindex.set_defaults(handler=cmd_reindex)

    check = commands.add_parser(
        "check", help="check every configuration item (services, playbook, LLM, embedder, providers, webhooks)"
    )
    check.set_defaults(handler=cmd_check)

    webhooks = commands.add_parser("webhooks", help="provider webhook set-up")
    webhook_actions = webhooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    register = webhook_actions.add_parser(
        "register", help="point the Wazzup webhook at PUBLIC_BASE_URL; print what to set for Twilio"
    )
    register.add_argument("--force", action="store_true", help="replace a Wazzup webhook another integration set")
    register.set_defaults(handler=cmd_webhooks_register)

    users = commands.add_parser("users", help="manager accounts of the admin and the REST API")
    user_actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_user = user_actions.add_parser("add", help="create an account (the password is read from standard input)")
    add_user.add_argument("username")
    add_user.add_argument("--name")
    add_user.add_argument("--email")
    add_user.add_argument("--role", choices=["manager", "admin"], default="manager")
    add_user.add_argument("--password-stdin", action="store_true", required=True, help="read the password from stdin")
    user_actions.add_parser("list", help="list the accounts")
    disable_user = user_actions.add_parser("disable", help="refuse the account's logins, sessions and API tokens")
    disable_user.add_argument("username")
    set_password = user_actions.add_parser("set-password", help="change a password (read from standard input)")
    set_password.add_argument("username")
    set_password.add_argument("--password-stdin", action="store_true", required=True, help="read it from stdin")
    issue_token = user_actions.add_parser("token", help="print a new REST API token for the user (shown once)")
    issue_token.add_argument("username")
    users.set_defaults(handler=cmd_users)

    chat = commands.add_parser("chat", help="talk to the running bot from the terminal (console provider)")
    chat.add_argument("--url", help="the bot's address (default: the running `salesbot dev`, else 127.0.0.1:8000)")
    chat.add_argument("--phone", help="the customer's phone (default: a test number kept in SALESBOT_DATA_DIR)")
    chat.add_argument("--name", help="the customer's name, as WhatsApp would show it")
    chat.set_defaults(handler=cmd_chat)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except DevStackError as exc:
        print(f"salesbot: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        # Refusing to start is an answer for the operator, not a crash: say what to change, without a traceback.
        problems = "\n".join(f"  - {error['msg'].removeprefix('Value error, ')}" for error in exc.errors())
        print(f"salesbot: configuration refused:\n{problems}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
