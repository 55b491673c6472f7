"""The sealing primitives: round trips, and every way a ciphertext must refuse to open."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import crypto, pow
from app.domain.errors import InvalidInput
from app.domain.kdf import PRODUCTION_RECEIPT_SCHEME
from app.domain.receipts import (
    RECEIPT_DIGITS,
    MalformedReceipt,
    damm_check_digit,
    derive_receipt_secrets,
    new_receipt,
    parse_receipt,
)
from app.domain.reporter_access import IdempotencySealer, ReporterSessionCodec
from tests.conftest import examples

CASE = uuid.uuid4()
OTHER_CASE = uuid.uuid4()


def test_a_content_key_opens_only_with_the_right_private_key_and_case() -> None:
    alice, mallory = crypto.PrivateKey.generate(), crypto.PrivateKey.generate()
    content_key = crypto.new_content_key()
    sealed = crypto.seal_content_key(content_key, alice.public_key, CASE)
    assert crypto.open_content_key(sealed, alice, CASE) == content_key
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_content_key(sealed, mallory, CASE)
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_content_key(sealed, alice, OTHER_CASE)  # moved to another record
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_content_key(tampered, alice, CASE)


@settings(max_examples=examples(50), deadline=None)
@given(plaintext=st.binary(max_size=3000))
def test_sealed_content_round_trips_and_hides_its_exact_length(plaintext: bytes) -> None:
    key = crypto.new_content_key()
    sealed = crypto.seal(key, plaintext, purpose=crypto.PURPOSE_REPORT, case_id=CASE)
    assert crypto.open_sealed(key, sealed, purpose=crypto.PURPOSE_REPORT, case_id=CASE) == plaintext
    assert (len(sealed) - crypto.NONCE_BYTES - 16) % crypto.PADDING_QUANTUM == 0


@pytest.mark.parametrize(
    "change",
    [
        {"case_id": OTHER_CASE},
        {"purpose": crypto.PURPOSE_MESSAGE},
        {"item_id": uuid.uuid4()},
    ],
)
def test_a_ciphertext_does_not_open_in_another_place(change: dict) -> None:
    key = crypto.new_content_key()
    where = {"purpose": crypto.PURPOSE_REPORT, "case_id": CASE, "item_id": None}
    sealed = crypto.seal(key, b"secret", **where)
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_sealed(key, sealed, **{**where, **change})


@pytest.mark.parametrize("position", [0, 5, 12, 20, -1])
def test_a_flipped_bit_anywhere_is_detected(position: int) -> None:
    key = crypto.new_content_key()
    sealed = bytearray(crypto.seal(key, b"secret", purpose=crypto.PURPOSE_REPORT, case_id=CASE))
    sealed[position] ^= 0x40
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_sealed(key, bytes(sealed), purpose=crypto.PURPOSE_REPORT, case_id=CASE)


def _seal_file(data: bytes, chunk_size: int = 4096) -> tuple[bytes, uuid.UUID, list[bytes]]:
    key, attachment = crypto.new_content_key(), uuid.uuid4()
    sealer = crypto.AttachmentSealer(key, CASE, attachment, chunk_size)
    chunks = []
    for start in range(0, len(data), 1000):
        chunks += sealer.feed(data[start : start + 1000])
    chunks.append(sealer.finish())
    return key, attachment, chunks


def _open_file(key: bytes, attachment: uuid.UUID, chunks: list[bytes]) -> bytes:
    return b"".join(
        crypto.open_attachment_chunk(
            key, chunk, case_id=CASE, attachment_id=attachment, index=i, final=i == len(chunks) - 1
        )
        for i, chunk in enumerate(chunks)
    )


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 20_000])
def test_attachments_round_trip_in_chunks(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    key, attachment, chunks = _seal_file(data)
    assert len(chunks) == max(1, -(-size // 4096))
    assert _open_file(key, attachment, chunks) == data


def test_attachment_chunks_cannot_be_dropped_reordered_or_cut_off() -> None:
    key, attachment, chunks = _seal_file(b"x" * 12_000)
    assert len(chunks) == 3
    for damaged in (chunks[:2], [chunks[1], chunks[0], chunks[2]], [chunks[0], chunks[2]]):
        with pytest.raises(crypto.DecryptionFailed):
            _open_file(key, attachment, damaged)


def test_keys_survive_their_text_forms() -> None:
    key = crypto.PrivateKey.generate()
    again = crypto.PrivateKey.from_file_text(key.to_file_text())
    assert again.public_key == key.public_key
    assert crypto.PublicKey.from_text(key.public_key.to_text()) == key.public_key
    assert key.public_key.fingerprint in key.to_file_text()
    assert "seed" not in repr(key) and key.to_file_text().split("\n")[3] not in repr(key)


@pytest.mark.parametrize(
    "text", ["", "cwpk1_", "cwpk2_AAAA", "cwpk1_!!!!", "cwpk1_" + "A" * 1622, "ssh-ed25519 AAAA"]
)
def test_malformed_public_keys_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        crypto.PublicKey.from_text(text)


def test_a_damaged_private_key_file_is_refused() -> None:
    lines = crypto.PrivateKey.generate().to_file_text().splitlines()
    with pytest.raises(InvalidInput):
        crypto.PrivateKey.from_file_text("\n".join(lines[:3] + [lines[3][:-8]] + lines[4:]))
    with pytest.raises(InvalidInput):
        crypto.PrivateKey.from_file_text("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----")


# --- receipts ----------------------------------------------------------------------


def test_receipts_are_21_digits_in_groups_with_a_valid_check_digit() -> None:
    receipts = {new_receipt() for _ in range(200)}
    assert len(receipts) == 200
    for receipt in receipts:
        digits = parse_receipt(receipt)
        assert len(digits) == RECEIPT_DIGITS and damm_check_digit(digits) == 0
        assert all(len(group) == 3 for group in receipt.split("-"))


def test_a_receipt_is_accepted_however_it_is_spaced() -> None:
    digits = parse_receipt(new_receipt())
    spaced = " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
    assert parse_receipt(spaced) == digits == parse_receipt(f"  {digits}\n")


def test_every_single_digit_typo_and_neighbour_swap_is_caught() -> None:
    digits = parse_receipt(new_receipt())
    for position in range(len(digits)):
        for replacement in "0123456789":
            if replacement != digits[position]:
                typo = digits[:position] + replacement + digits[position + 1 :]
                with pytest.raises(MalformedReceipt, match="check digit"):
                    parse_receipt(typo)
    for position in range(len(digits) - 1):
        if digits[position] != digits[position + 1]:
            swapped = digits[:position] + digits[position + 1] + digits[position] + digits[position + 2 :]
            with pytest.raises(MalformedReceipt):
                parse_receipt(swapped)


@pytest.mark.parametrize("text", ["", "abc", "123", "１２３-４５６", "1" * 22])
def test_malformed_receipts_say_what_is_wrong(text: str) -> None:
    with pytest.raises(MalformedReceipt):
        parse_receipt(text)


def test_the_receipt_yields_a_stable_tag_and_key_pair_that_depend_on_the_salt() -> None:
    digits = parse_receipt(new_receipt())
    scheme = PRODUCTION_RECEIPT_SCHEME
    first = derive_receipt_secrets(digits, b"s" * 16, scheme=scheme)
    second = derive_receipt_secrets(digits, b"s" * 16, scheme=scheme)
    assert first.lookup_tag == second.lookup_tag
    assert first.reporter_key().public_key == second.reporter_key().public_key
    assert first.lookup_tag != first.master and len(first.lookup_tag) == 32
    other_salt = derive_receipt_secrets(digits, b"t" * 16, scheme=scheme)
    assert other_salt.lookup_tag != first.lookup_tag


# --- reporter sessions and idempotency ---------------------------------------------

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_a_reporter_session_opens_only_unexpired_with_the_same_secret() -> None:
    codec = ReporterSessionCodec(b"k" * 32)
    token = codec.issue(CASE, b"m" * 32, NOW + timedelta(minutes=30))
    opened = codec.open(token, NOW)
    assert (opened.case_id, opened.master) == (CASE, b"m" * 32)
    for bad_token, when in [
        (token, NOW + timedelta(minutes=30)),
        (token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], NOW),
        ("cwr_", NOW),
        ("cws_abc", NOW),
        (None, NOW),
    ]:
        with pytest.raises(InvalidInput.__mro__[1]):  # DomainError: NotAuthenticated
            codec.open(bad_token, when)
    with pytest.raises(Exception, match="invalid or has expired"):
        ReporterSessionCodec(b"j" * 32).open(token, NOW)


def test_replay_data_opens_only_with_the_idempotency_key_and_case() -> None:
    sealer = IdempotencySealer(b"k" * 32)
    key = "a-client-chosen-random-key-0123"
    sealed = sealer.seal_receipt(key, CASE, "receipt")
    assert sealer.open_receipt(key, CASE, sealed) == "receipt"
    assert sealer.open_receipt(key + "x", CASE, sealed) is None
    assert sealer.open_receipt(key, OTHER_CASE, sealed) is None
    assert b"receipt" not in sealed and sealer.digest(key) != sealer.digest(key + "x")


# --- proof of work -----------------------------------------------------------------


def test_a_solved_challenge_verifies_and_a_forged_one_does_not() -> None:
    secret = b"k" * 32
    issued = pow.issue_challenge(secret, difficulty=8, expires_at=NOW + timedelta(minutes=5))
    nonce = pow.solve(issued.challenge, 8)
    assert len(pow.verify_solution(secret, issued.challenge, nonce, NOW)) == 32
    with pytest.raises(pow.ChallengeInvalid):
        pow.verify_solution(b"j" * 32, issued.challenge, nonce, NOW)
    with pytest.raises(pow.ChallengeExpired):
        pow.verify_solution(secret, issued.challenge, nonce, NOW + timedelta(minutes=5))
    import base64

    raw = bytearray(base64.b64decode(issued.challenge))
    raw[25] = 0  # lower the difficulty byte
    with pytest.raises(pow.ChallengeInvalid):
        pow.verify_solution(secret, base64.b64encode(bytes(raw)).decode(), nonce, NOW)


def test_a_nonce_that_misses_the_difficulty_is_refused() -> None:
    secret = b"k" * 32
    issued = pow.issue_challenge(secret, difficulty=12, expires_at=NOW + timedelta(minutes=5))
    good = int(pow.solve(issued.challenge, 12))
    wrong = next(
        str(n) for n in range(good + 1, good + 10_000)
        if pow.leading_zero_bits(__import__("hashlib").sha256(base64_raw(issued.challenge) + str(n).encode()).digest()) < 12
    )
    with pytest.raises(pow.InsufficientWork):
        pow.verify_solution(secret, issued.challenge, wrong, NOW)
    for malformed in ["", "-1", "1e5", "１２", "9" * 40]:
        with pytest.raises(pow.InsufficientWork):
            pow.verify_solution(secret, issued.challenge, malformed, NOW)


def base64_raw(challenge: str) -> bytes:
    import base64

    return base64.b64decode(challenge)


@pytest.mark.parametrize(
    ("used", "extra"), [(0, 0), (499, 0), (500, 1), (999, 1), (1000, 2), (2000, 3), (10**9, 6)]
)
def test_difficulty_rises_one_bit_per_doubling_past_the_budget(used: int, extra: int) -> None:
    assert pow.extra_difficulty(used, 500, 6) == extra


def test_leading_zero_bits() -> None:
    assert pow.leading_zero_bits(b"\x00\x00\x80") == 16
    assert pow.leading_zero_bits(b"\x00\x01") == 15
    assert pow.leading_zero_bits(b"\xff") == 0
