"""``python -m tests.mongodb_site.scenario sync|async``: use the site, print what happened as JSON.

``async`` touches the sessions from async code first, in a fresh process.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402

import mongo_sessions  # noqa: E402
from mongo_sessions import connection  # noqa: E402
from mongo_sessions.session import SessionStore  # noqa: E402


def sync_scenario() -> dict[str, Any]:
    from django.test import Client

    user = User.objects.create_user("alice", password="pw")
    client = Client()
    logged_in = client.login(username="alice", password="pw")
    listed = mongo_sessions.user_sessions(user)
    return {
        "user_pk": str(user.pk),
        "logged_in": logged_in,
        "listed": len(listed),
        "connection": connection.describe_connection(),
        "revoked": mongo_sessions.revoke_user_sessions(user),
    }


async def async_scenario() -> dict[str, Any]:
    session = SessionStore()  # the first use of the store in this process
    await session.aset("cart", ["apple"])
    await session.asave()
    loaded = await SessionStore(session.session_key).aget("cart")
    user = await User.objects.aget(username="alice")
    other = SessionStore()
    await other.aset("_auth_user_id", str(user.pk))
    await other.asave()
    listed = await mongo_sessions.auser_sessions(user)
    return {
        "loaded": loaded,
        "user_listed": len(listed),
        "style": connection.get_target().style,
    }


if __name__ == "__main__":
    result = sync_scenario() if sys.argv[1] == "sync" else asyncio.run(async_scenario())
    print(json.dumps(result))
