"""API tokens: their format, how they are made, hashed and checked. No AWS in here.

A token reads ``sqz_<id>_<secret>``:

    id      12 characters [a-z0-9], public: it names the token in the table,
            in logs and in ``squeezer admin list-tenants``
    secret  43 characters of base64url, 256 random bits: never stored, never logged

Only the SHA-256 of the secret is stored. The secret has 256 bits of entropy,
so a slow password hash would add nothing but latency; comparisons are made
in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "sqz"
ID_LENGTH = 12
SECRET_BYTES = 32  # 256 bits
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_SECRET_LENGTH = 43  # base64url of 32 bytes, without padding
TOKEN_PATTERN = re.compile(rf"^{PREFIX}_([a-z0-9]{{{ID_LENGTH}}})_([A-Za-z0-9_-]{{{_SECRET_LENGTH}}})$")
BEARER = "bearer"


@dataclass(frozen=True)
class Token:
    """A token as the client holds it. ``repr`` never shows the secret."""

    token_id: str
    secret: str

    def __str__(self) -> str:
        return f"{PREFIX}_{self.token_id}_{self.secret}"

    def __repr__(self) -> str:
        return f"Token(token_id={self.token_id!r}, secret=<hidden>)"

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)

    @property
    def masked(self) -> str:
        """What may be shown: the public id and no secret."""
        return f"{PREFIX}_{self.token_id}_{'*' * 8}"


def new_token() -> Token:
    token_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))
    return Token(token_id=token_id, secret=secrets.token_urlsafe(SECRET_BYTES))


def parse_token(text: str) -> Token | None:
    """The token in ``text`` (a bare token), or None if it is not one."""
    match = TOKEN_PATTERN.match(text.strip()) if isinstance(text, str) else None
    return Token(token_id=match.group(1), secret=match.group(2)) if match else None


def parse_bearer(header: str | None) -> Token | None:
    """The token in an ``Authorization: Bearer <token>`` header value, or None."""
    if not isinstance(header, str):
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != BEARER:
        return None
    return parse_token(value)


def token_id_of(header: str | None) -> str | None:
    """The public id in a header that may be malformed, for logs (never the secret)."""
    if not isinstance(header, str):
        return None
    match = re.search(rf"{PREFIX}_([a-z0-9]{{{ID_LENGTH}}})_", header)
    return match.group(1) if match else None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(token: Token, stored_hash: str) -> bool:
    """Whether ``token``'s secret hashes to ``stored_hash``, in constant time."""
    return hmac.compare_digest(token.secret_hash.encode(), stored_hash.encode())
