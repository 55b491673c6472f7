"""The key derivation functions on production's parameters, and what keeps the test
suite's cheap ones out of production."""

from __future__ import annotations

import pytest
from argon2.low_level import Type, hash_secret_raw

from app.domain.kdf import (
    PRODUCTION_ARGON2,
    PRODUCTION_KEY_DERIVATION,
    PRODUCTION_RECEIPT_SCHEME,
    TEST_ARGON2,
    TEST_RECEIPT_SCHEME,
    Argon2Parameters,
    KeyDerivation,
    ReceiptScheme,
)
from app.domain.receipts import derive_receipt_secrets, parse_receipt
from app.domain.staff import PasswordHashing

RECEIPT = "123-456-789-012-345-678-907"
SALT = bytes(range(16))
# Computed with scheme 1 before the parameters became injectable: every receipt handed
# out so far must keep finding its case.
SCHEME_1_MASTER = "c5b0f659e19793e27423e1bfc2d98347d495a62c0c24fa7017e70be40829245c"
SCHEME_1_TAG = "a468d9efb5d7f196429f92b0e12491a1d83d6ffe42c256f885c2f23e90913d80"
SCHEME_1_REPORTER_KEY_PREFIX = "cwpk1_wWIK-5CuDnpPAMgtb_d8MQA4R0Nrrzu6XxhZ_uDPBCSgEwKNNGhlHI"
PRODUCTION_HASH_PREFIX = "$argon2id$v=19$m=65536,t=3,p=4$"


def test_production_parameters_are_rfc_9106s_second_option() -> None:
    assert PRODUCTION_ARGON2 == Argon2Parameters(time_cost=3, memory_kib=64 * 1024, parallelism=4)
    assert KeyDerivation() == PRODUCTION_KEY_DERIVATION
    assert PRODUCTION_KEY_DERIVATION.passwords == PRODUCTION_ARGON2
    assert PRODUCTION_KEY_DERIVATION.receipts == PRODUCTION_RECEIPT_SCHEME == ReceiptScheme(1, PRODUCTION_ARGON2)


def test_a_receipt_under_scheme_1_gives_the_known_tag_and_key() -> None:
    secrets = derive_receipt_secrets(parse_receipt(RECEIPT), SALT, scheme=PRODUCTION_RECEIPT_SCHEME)
    assert secrets.master.hex() == SCHEME_1_MASTER
    assert secrets.lookup_tag.hex() == SCHEME_1_TAG
    assert secrets.reporter_key().public_key.to_text().startswith(SCHEME_1_REPORTER_KEY_PREFIX)
    # ...and the master is Argon2id with exactly those parameters, nothing else.
    assert secrets.master == hash_secret_raw(
        RECEIPT.replace("-", "").encode(), SALT, time_cost=3, memory_cost=65536, parallelism=4,
        hash_len=32, type=Type.ID,
    )


def test_the_test_scheme_makes_other_tags_under_another_number() -> None:
    digits = parse_receipt(RECEIPT)
    cheap = derive_receipt_secrets(digits, SALT, scheme=TEST_RECEIPT_SCHEME)
    assert cheap.lookup_tag.hex() != SCHEME_1_TAG
    assert TEST_RECEIPT_SCHEME.number != PRODUCTION_RECEIPT_SCHEME.number


@pytest.mark.parametrize(
    ("number", "parameters"),
    [(1, TEST_ARGON2), (0, PRODUCTION_ARGON2), (1, Argon2Parameters(time_cost=4)), (2, PRODUCTION_ARGON2)],
)
def test_a_scheme_number_stands_for_its_own_parameters_only(number: int, parameters: Argon2Parameters) -> None:
    """A stored number must say how its tag was made: no number is reused for others."""
    with pytest.raises(ValueError, match="does not stand for"):
        ReceiptScheme(number, parameters)


@pytest.mark.parametrize(
    "arguments", [{"time_cost": 0}, {"parallelism": 0}, {"memory_kib": 31, "parallelism": 4}]
)
def test_parameters_argon2_would_refuse_are_refused_at_once(arguments: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Argon2Parameters(**arguments)


def test_a_password_hash_records_production_parameters_and_verifies() -> None:
    hashing = PasswordHashing()
    assert hashing.parameters == PRODUCTION_ARGON2
    stored = hashing.hash("correct horse battery staple")
    assert stored.startswith(PRODUCTION_HASH_PREFIX)
    assert hashing.verify(stored, "correct horse battery staple")
    assert not hashing.verify(stored, "correct horse battery stapler")
    assert hashing.verify_and_upgrade(stored, "correct horse battery staple") == (True, None)


def test_production_rehashes_a_cheap_hash_at_its_first_login() -> None:
    """Hashes the test suite makes are cheap; a service on production's parameters that
    met one would verify it with the parameters it records, then store a strong one."""
    cheap = PasswordHashing(TEST_ARGON2).hash("correct horse battery staple")
    assert cheap.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    verified, upgraded = PasswordHashing().verify_and_upgrade(cheap, "correct horse battery staple")
    assert verified and upgraded is not None and upgraded.startswith(PRODUCTION_HASH_PREFIX)
