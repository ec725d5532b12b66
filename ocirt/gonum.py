"""Numbers as Go's strconv.Atoi reads them: where runc parses a value so, ocirt takes what it
takes (ASCII digits and a sign), not what Python's int() also takes (spaces, underscores,
digits of other scripts)."""

INT64_MAX = 2**63 - 1


def go_atoi(text: str) -> int | None:
    """strconv.Atoi of `text` (a 64-bit int); None where it fails."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    n = int(text)
    return n if -INT64_MAX - 1 <= n <= INT64_MAX else None
