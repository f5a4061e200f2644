"""Password text before hashing: the PRECIS OpaqueString profile (RFC 8265, section 4.2).

The same password typed on two keyboards can reach us as different code points (NFC "é" from
one, NFD "e" + U+0301 from another; a no-break space from a phone). OpaqueString maps
non-ASCII spaces to U+0020 and normalizes to NFC, and rejects controls and other disallowed
code points, so both spellings hash alike. Library: ``precis-i18n``.
"""

from __future__ import annotations

from precis_i18n import get_profile

_PROFILE = get_profile("OpaqueString")


class UnusablePassword(ValueError):
    """The password holds code points OpaqueString disallows (controls, unassigned, empty)."""


def prepare(password: str) -> str:
    """The enforced OpaqueString form; ``UnusablePassword`` when the profile rejects it."""
    try:
        return _PROFILE.enforce(password)
    except UnicodeError as exc:
        reason = str(exc).rsplit(": ", 1)[-1] if ": " in str(exc) else "disallowed characters"
        raise UnusablePassword(reason) from None


def candidates(password: str) -> list[str]:
    """What to check a login against: the prepared form, then the raw text for hashes made
    before passwords were prepared (at most two, so the timing depends only on the input)."""
    try:
        prepared = prepare(password)
    except UnusablePassword:
        # Never a valid new password; an old hash may still have been made from it.
        return [password]
    return [prepared] if prepared == password else [prepared, password]
