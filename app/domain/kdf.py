"""Argon2id parameters: production's, and the cheap ones the test suite injects.

The service hashes staff passwords and derives receipt secrets with Argon2id. Both costs
are deliberate (≈0.1 s and 64 MiB an evaluation), and a test suite that paid them in every
fixture would spend most of its time there. So the parameters are handed in as a
`KeyDerivation`: `create_app` and the CLI take `PRODUCTION_KEY_DERIVATION` unless Python
code passes another. It is deliberately not a setting: no environment variable or `.env`
line can lower it in a deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

# Argon2 accepts no less than 8 KiB of memory per lane.
_MINIMUM_KIB_PER_LANE = 8


@dataclass(frozen=True)
class Argon2Parameters:
    """RFC 9106's second recommended option by default (argon2-cffi's default too):
    3 passes over 64 MiB in 4 lanes."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 4

    def __post_init__(self) -> None:
        if self.time_cost < 1 or self.parallelism < 1:
            raise ValueError("Argon2 needs at least one pass and one lane.")
        if self.memory_kib < _MINIMUM_KIB_PER_LANE * self.parallelism:
            raise ValueError("Argon2 needs at least 8 KiB of memory per lane.")


PRODUCTION_ARGON2 = Argon2Parameters()
# For the test suite only: one pass over 8 KiB, microseconds instead of a tenth of a second.
TEST_ARGON2 = Argon2Parameters(time_cost=1, memory_kib=_MINIMUM_KIB_PER_LANE, parallelism=1)


@dataclass(frozen=True)
class ReceiptScheme:
    """The number stored with each case's receipt tag, and the Argon2id parameters it
    stands for. A tag is found again only with the parameters it was made with, so the
    number names them: other parameters need a new number, never a reused one."""

    number: int
    argon2: Argon2Parameters

    def __post_init__(self) -> None:
        if _RECEIPT_SCHEME_PARAMETERS.get(self.number) != self.argon2:
            raise ValueError(f"Receipt scheme {self.number} does not stand for {self.argon2}.")


_RECEIPT_SCHEME_PARAMETERS = {
    1: PRODUCTION_ARGON2,
    # The test suite's, under a number of their own: a service on production's scheme
    # never finds a case made with them, even in a database that somehow held one.
    0: TEST_ARGON2,
}
PRODUCTION_RECEIPT_SCHEME = ReceiptScheme(1, PRODUCTION_ARGON2)
TEST_RECEIPT_SCHEME = ReceiptScheme(0, TEST_ARGON2)


@dataclass(frozen=True)
class KeyDerivation:
    """What a service derives keys with: staff password hashes (each hash records its
    own parameters; one made with others is rehashed with `passwords` at its next login)
    and receipt secrets (new receipts are made, and receipt logins looked up, under
    `receipts`)."""

    passwords: Argon2Parameters = PRODUCTION_ARGON2
    receipts: ReceiptScheme = PRODUCTION_RECEIPT_SCHEME


PRODUCTION_KEY_DERIVATION = KeyDerivation()
TEST_KEY_DERIVATION = KeyDerivation(passwords=TEST_ARGON2, receipts=TEST_RECEIPT_SCHEME)
