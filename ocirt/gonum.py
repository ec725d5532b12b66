"""Numbers from text, without int()'s first-call cost, and as Go's strconv.Atoi reads them.

decimal(text) is int(text): CPython's first base-10 conversion in a process computes log(10)
(longobject.c's table of digits per limb), and the C library's log then maps its code and
tables into the command (~176 KiB of libm on this host: the kernel maps a file's pages in 64 KiB
windows around each fault); the commands' own numbers (config.json's, state.json's, /proc's)
are plain ASCII digits, which decimal() adds up itself. go_atoi: where runc parses a value so,
ocirt takes what it takes (ASCII digits and a sign), not what Python's int() also takes
(spaces, underscores, digits of other scripts)."""

INT64_MAX = 2**63 - 1


def _signed_digits(text: str | bytes) -> int | None:
    """The value of a sign and ASCII digits; None for any other text. Up to 40 digits are added
    up (no int(): above), more go to int() (quicker on long ones)."""
    digits = text[1:] if text[:1] in ("-", "+", b"-", b"+") else text
    if not (digits and digits.isascii() and digits.isdigit()):
        return None
    if len(digits) > 40:
        return int(text)
    n = 0
    for c in digits.encode() if isinstance(digits, str) else digits:
        n = n * 10 + c - 48
    return -n if text[:1] in ("-", b"-") else n


def decimal(text: str | bytes) -> int:
    """int(text), base 10: the same value, or the same ValueError; anything but ASCII digits (a
    sign, spaces around) goes to int()."""
    text = text.strip()
    n = _signed_digits(text)
    return int(text) if n is None else n


def go_atoi(text: str) -> int | None:
    """strconv.Atoi of `text` (a 64-bit int); None where it fails."""
    n = _signed_digits(text)
    return n if n is not None and -INT64_MAX - 1 <= n <= INT64_MAX else None
