"""Create or verify the sessions collection's indexes and bring in existing sessions."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from pymongo.collection import Collection

from mongo_sessions.connection import describe_connection, get_target, ping
from mongo_sessions.convert import BATCH_SIZE, convert_sessions, count_in_other_format, engine_store
from mongo_sessions.exceptions import SessionStoreError, SessionStoreUnavailable
from mongo_sessions.index_changes import apply_index_changes, plan_index_changes, seed_ttl_index
from mongo_sessions.migration import import_db_sessions, migrate_seed_sessions
from mongo_sessions.operation import mongo_operation
from mongo_sessions.validation import timeout_seconds


class Command(BaseCommand):
    help = (
        "Create or verify the indexes of the MongoDB sessions collection; optionally copy "
        "sessions from Django's database backend, convert django-mongo-sessions 0.x ones, or "
        "rewrite stored sessions in the configured format."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="Only report what would change; exit with status 1 if anything would.",
        )
        parser.add_argument(
            "--import-db",
            action="store_true",
            help="Copy the live sessions of Django's database backend (django_session).",
        )
        parser.add_argument(
            "--database",
            default="default",
            help="Database alias holding django_session, for --import-db (default: default).",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=600.0,
            help="Seconds the whole command may spend on MongoDB once the server answered, "
            "for long index builds and copies (default: 600). Reaching the server is "
            "bounded by MONGO_SESSIONS_TIMEOUT.",
        )
        parser.add_argument(
            "--convert",
            action="store_true",
            help="Rewrite the live sessions stored in the other format in MONGO_SESSIONS_FORMAT, "
            f"in batches of {BATCH_SIZE}.",
        )
        parser.add_argument(
            "--migrate-seed",
            action="store_true",
            help="Convert documents written by django-mongo-sessions 0.x and drop its TTL index.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._handle(**options)
        except (SessionStoreError, ImproperlyConfigured) as e:
            raise CommandError(str(e)) from e

    def _handle(self, **options: Any) -> None:
        # Index builds and copies may outlast a request's timeout: bound the whole run
        # (and report a client that cannot be built, e.g. an SRV name without DNS).
        with mongo_operation("setup", timeout=options["timeout"]):
            collection = get_target().collection
            self.stdout.write(f"Sessions collection: {collection.full_name}")
            self._reach_server()
            self._run(collection, **options)

    def _reach_server(self) -> None:
        """Ping the server under MONGO_SESSIONS_TIMEOUT (nested in the run's --timeout).

        Under ``pymongo.timeout()`` server selection waits as long as the bound
        left, so without this a server that is not there kept every mode silent
        for the whole --timeout (600 s), which is meant for index builds.

        :raises CommandError: naming the server and the settings to check, when
            it cannot be reached in time (the URL's password is never shown).
        """
        seconds = timeout_seconds()
        try:
            ping("setup")  # under MONGO_SESSIONS_TIMEOUT, nested in the run's bound
        except SessionStoreUnavailable as e:
            where = describe_connection()
            raise CommandError(
                f"MongoDB at {where['address']} (database {where['database']}) could not be "
                f"reached within MONGO_SESSIONS_TIMEOUT ({seconds} s): check that the server "
                "runs and the connection settings (MONGO_SESSIONS_URL, or MONGO_CLIENT / "
                f"MONGO_HOST and MONGO_PORT) and MONGO_SESSIONS_TIMEOUT. {e.detail}"
            ) from e

    def _run(self, collection: Collection[Any], **options: Any) -> None:
        actions = plan_index_changes(collection)
        seed_index = seed_ttl_index(collection)
        for action in actions:
            if action.blocking:
                self.stdout.write(f"found {action.blocking}")
        if options["check"]:
            for action in actions:
                self.stdout.write(f"would {action.description}")
            if seed_index is not None:
                self.stdout.write(
                    f"found index {seed_index['name']} of django-mongo-sessions 0.x: "
                    "run with --migrate-seed"
                )
            store = engine_store()
            others = count_in_other_format(collection, store)
            if others:
                # Not a change the site needs (loads read both formats): reported only.
                self.stdout.write(
                    f"found {others} live session(s) not in the {store._write_format()} "
                    "format: run with --convert to rewrite them"
                )
            if actions:
                raise CommandError(f"{len(actions)} index change(s) needed")
            self.stdout.write(self.style.SUCCESS("Indexes are as expected."))
            return
        for line in apply_index_changes(collection, actions):
            self.stdout.write(line)
        if not actions:
            self.stdout.write("Indexes are as expected; nothing changed.")
        if options["import_db"]:
            report = import_db_sessions(collection, options["database"])
            self.stdout.write(
                f"imported {report.copied} session(s) from django_session, "
                f"{report.already_present} already present, "
                f"{report.skipped} expired or invalid skipped"
            )
        if options["convert"]:
            converted = convert_sessions(collection)
            self.stdout.write(
                f"converted {converted.converted} session(s) to the {converted.target} format, "
                f"{converted.left} left as they were (not convertible), "
                f"{converted.saved_meanwhile} saved by a request meanwhile"
            )
        if options["migrate_seed"]:
            report, dropped = migrate_seed_sessions(collection)
            self.stdout.write(
                f"converted {report.copied} django-mongo-sessions 0.x session(s), "
                f"{report.already_present} already present, {report.skipped} expired skipped"
            )
            if dropped:
                self.stdout.write(f"dropped index {dropped} of django-mongo-sessions 0.x")
        self.stdout.write(self.style.SUCCESS("Done."))
