"""Message format 2: the author is bound into the seal; format 1 messages still open,
marked unverified; what opens as neither, or is not text, is DecryptionFailed."""

from __future__ import annotations

import uuid

import pytest

from app.domain import crypto

CASE, MESSAGE = uuid.uuid4(), uuid.uuid4()


@pytest.mark.parametrize("author", crypto.MESSAGE_AUTHORS)
def test_a_message_opens_as_its_author_only(author: str) -> None:
    key = crypto.new_content_key()
    sealed = crypto.seal_message(key, "안녕하세요", case_id=CASE, message_id=MESSAGE, author=author)
    opened = crypto.open_message(key, sealed, case_id=CASE, message_id=MESSAGE, author=author)
    assert opened == crypto.OpenedMessage("안녕하세요", author_verified=True)
    (other,) = set(crypto.MESSAGE_AUTHORS) - {author}
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_message(key, sealed, case_id=CASE, message_id=MESSAGE, author=other)


@pytest.mark.parametrize("author", crypto.MESSAGE_AUTHORS)
def test_a_format_1_message_opens_for_either_author_unverified(author: str) -> None:
    key = crypto.new_content_key()
    sealed = crypto.seal(key, b"old", purpose=crypto.PURPOSE_MESSAGE, case_id=CASE, item_id=MESSAGE)
    opened = crypto.open_message(key, sealed, case_id=CASE, message_id=MESSAGE, author=author)
    assert opened == crypto.OpenedMessage("old", author_verified=False)


def test_a_message_that_is_not_utf8_text_does_not_open() -> None:
    key = crypto.new_content_key()
    for purpose in (crypto.message_purpose("staff"), crypto.PURPOSE_MESSAGE):
        sealed = crypto.seal(key, b"caf\xe9", purpose=purpose, case_id=CASE, item_id=MESSAGE)
        with pytest.raises(crypto.DecryptionFailed):
            crypto.open_message(key, sealed, case_id=CASE, message_id=MESSAGE, author="staff")


def test_a_message_moved_to_another_id_or_case_does_not_open_in_either_format() -> None:
    key = crypto.new_content_key()
    sealed = crypto.seal_message(key, "hi", case_id=CASE, message_id=MESSAGE, author="staff")
    for where in ({"case_id": uuid.uuid4(), "message_id": MESSAGE}, {"case_id": CASE, "message_id": uuid.uuid4()}):
        with pytest.raises(crypto.DecryptionFailed):
            crypto.open_message(key, sealed, **where, author="staff")


def test_only_known_authors_are_sealed() -> None:
    with pytest.raises(ValueError):
        crypto.seal_message(crypto.new_content_key(), "hi", case_id=CASE, message_id=MESSAGE, author="admin")


def test_a_message_opens_only_in_the_format_stored_with_it() -> None:
    key = crypto.new_content_key()
    where = {"case_id": CASE, "message_id": MESSAGE, "author": "staff"}
    new = crypto.seal_message(key, "new", case_id=CASE, message_id=MESSAGE, author="staff")
    old = crypto.seal(key, b"old", purpose=crypto.PURPOSE_MESSAGE, case_id=CASE, item_id=MESSAGE)
    assert crypto.open_message(key, new, **where, seal_format=2) == crypto.OpenedMessage("new", True)
    assert crypto.open_message(key, old, **where, seal_format=1) == crypto.OpenedMessage("old", False)
    for sealed, stored_as in ((old, 2), (new, 1), (new, 3)):
        with pytest.raises(crypto.DecryptionFailed):
            crypto.open_message(key, sealed, **where, seal_format=stored_as)
    # A service that does not say which (older than the stored format): both are tried.
    assert crypto.open_message(key, old, **where).author_verified is False
