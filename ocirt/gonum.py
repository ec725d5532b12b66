"""Numbers from text, without int()'s first-call cost, and as Go's strconv.Atoi reads them.

decimal(text) is int(text): CPython's first base-10 conversion in a process computes log(10)
(longobject.c's table of digits per limb), and the C library's log then maps its code and
tables into the command (~176 KiB of libm on this host: the kernel maps a file's pages in 64 KiB
windows around each fault); the commands' own numbers (config.json's, state.json's, /proc's)
are plain ASCII digits, which decimal() adds up itself. go_atoi: where runc parses a value so,
ocirt takes what it takes (ASCII digits and a sign), not what Python's int() also takes
(spaces, underscores, digits of other scripts)."""

INT64_MAX = 2**63 - 1


def decimal(text: str | bytes) -> int:
    """int(text), base 10: the same value, or the same ValueError; ASCII digits (a sign, spaces
    around) without int() (above). More than 40 digits go to int() too (quicker on long ones)."""
    text = text.strip()
    digits = text[1:] if text[:1] in ("-", "+", b"-", b"+") else text
    if not (0 < len(digits) <= 40 and digits.isascii() and digits.isdigit()):
        return int(text)
    n = 0
    for c in digits.encode() if isinstance(digits, str) else digits:
        n = n * 10 + c - 48
    return -n if text[:1] in ("-", b"-") else n


def go_atoi(text: str) -> int | None:
    """strconv.Atoi of `text` (a 64-bit int); None where it fails."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    n = decimal(text)
    return n if -INT64_MAX - 1 <= n <= INT64_MAX else None
