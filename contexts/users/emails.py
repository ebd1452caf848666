"""
What a customer's email address is, once: the one rule that registration,
sign-in, a change of address, the customer filter, the admin and the data
migration of existing rows all apply before they store or compare one.

Two strings a reader cannot tell apart must be one address, or a look-alike
registers as a new customer while the mail goes to the original's mailbox:

- bidirectional controls (embeddings, overrides, isolates, the marks) and
  control characters are refused: they reorder or hide what is displayed,
  and no mail system takes them;
- the other format characters (zero-width space and joiners, word joiner,
  byte order mark, soft hyphen) are dropped: they are invisible;
- NFKC folds compatibility forms (full-width letters, ligatures) into the
  characters they look like;
- case is folded to lower case, so addresses compare without regard to it.
"""

from __future__ import annotations

import unicodedata

# the Unicode bidirectional controls: embeddings and overrides (U+202A-U+202E),
# isolates (U+2066-U+2069) and the implicit marks (ALM, LRM, RLM)
BIDI_CONTROLS = frozenset(
    ["\u061c", "\u200e", "\u200f"]
    + [chr(code) for code in range(0x202A, 0x202F)]
    + [chr(code) for code in range(0x2066, 0x206A)]
)


class UnacceptableEmail(ValueError):
    """The address holds characters no address may hold."""


def normalize_email(email: str) -> str:
    """The address as it is stored and compared; UnacceptableEmail for one that cannot be."""
    email = email.strip()
    for char in email:
        if char in BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            raise UnacceptableEmail(
                "Must not contain control characters or bidirectional controls."
            )
    visible = "".join(char for char in email if unicodedata.category(char) != "Cf")
    folded = unicodedata.normalize("NFKC", visible).lower()
    return unicodedata.normalize("NFKC", folded).strip()
