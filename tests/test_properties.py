"""Property-based tests (Hypothesis) against the live server.

* Any JSON-serializable session content (string keys, nested dicts and lists,
  integers in the JSON-safe range, floats without NaN, any unicode text) comes
  back equal after a save and a load by a fresh store, and after an update.
* Any cookie text is either a well-formed key, looked up by equality, or no key
  at all: nothing else reaches MongoDB, and another user's session is never
  returned.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mongo_sessions.session import SessionStore
from mongo_sessions.testing import CommandCounter

JSON_SAFE_INT = 2**53 - 1
KEY_PATTERN = re.compile(r"[a-z0-9]{8,64}")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-JSON_SAFE_INT, max_value=JSON_SAFE_INT)
    | st.floats(allow_nan=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
# "_session_expiry" is Django's reserved key for set_expiry(): not free-form data.
session_keys = st.text(max_size=20).filter(lambda key: key != "_session_expiry")
session_contents = st.dictionaries(session_keys, json_values, max_size=8)

PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    # The per-test collection is shared by the examples, which is what we want.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@PROPERTY_SETTINGS
@given(first=session_contents, second=session_contents)
def test_session_contents_round_trip(first: dict[str, Any], second: dict[str, Any]) -> None:
    store = SessionStore()
    store.update(first)
    store.save()
    assert SessionStore(store.session_key).load() == first

    # An update replaces the whole content, with nothing left of the first.
    updater = SessionStore(store.session_key)
    updater.clear()
    updater.update(second)
    updater.save()
    assert updater.session_key == store.session_key
    assert SessionStore(store.session_key).load() == second


cookie_texts = st.text() | st.from_regex(KEY_PATTERN, fullmatch=True)


@PROPERTY_SETTINGS
@given(cookie=cookie_texts)
def test_any_cookie_is_a_well_formed_key_or_no_key(
    cookie: str, command_counter: CommandCounter, sessions_collection: Any
) -> None:
    victim = SessionStore()
    victim["secret"] = "victim's"
    victim.save()
    command_counter.reset()

    store = SessionStore(cookie)
    well_formed = KEY_PATTERN.fullmatch(cookie) is not None
    assert store.session_key == (cookie if well_formed else None)
    loaded = store.load()
    if cookie == victim.session_key:  # only by guessing the key itself
        assert loaded == {"secret": "victim's"}
    else:
        assert loaded == {}
    assert command_counter.commands == (["find"] if well_formed else [])
    sessions_collection.delete_many({})
