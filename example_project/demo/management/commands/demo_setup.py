"""``manage.py demo_setup``: create the user table and the demo account.

It also creates the sessions collection's indexes (``mongo_sessions_setup``,
the step a real deployment runs once), unless ``--skip-mongo`` is given.

Safe to run any number of times: migrations that already ran are skipped, and
an existing demo account is kept (its password is reset to the configured one
when it differs). ``rundemo`` runs it before it starts gunicorn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Run the migrations and create the demo user (for the demo only). Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--skip-mongo",
            action="store_true",
            help="do not create the sessions collection's indexes in MongoDB",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        db_file = Path(settings.DATABASES["default"]["NAME"])
        db_file.parent.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)

        username: str = settings.DEMO_USERNAME
        password: str = settings.DEMO_PASSWORD
        user_model = get_user_model()
        lookup = {str(user_model.USERNAME_FIELD): username}
        user = user_model._default_manager.filter(**lookup).first()
        created = user is None
        if user is None:
            user = user_model(**lookup)
        if created or not user.check_password(password):
            user.set_password(password)
            user.save()
        state = "created" if created else "already there"
        self.stdout.write(f"Demo user {username!r} {state} (database {db_file}).")
        if not options["skip_mongo"]:
            try:
                call_command("mongo_sessions_setup", stdout=self.stdout, stderr=self.stderr)
            except CommandError as error:
                # E.g. a MongoDB user without createIndex: the demo still runs.
                self.stderr.write(f"Warning: could not set up the sessions collection: {error}")
