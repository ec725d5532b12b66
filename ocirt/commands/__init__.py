"""One module per command; each has USAGE, OPTIONS and main(globals, options, args)."""

import gc


class _GcOff:
    def __enter__(self) -> None:
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc) -> None:
        if self.was_enabled:
            # What the command allocated goes to the oldest generation as it is (freeze resets
            # the young generation's count, unfreeze hands the objects back): enabled with that
            # count, the collector would scan them all at the next allocation (~1 ms) instead.
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def without_gc() -> _GcOff:
    """Every command runs without cyclic garbage collection (cli.main: `with without_gc():`;
    bin/ocirt's from its start, launch.launch, so that the command line's imports run without).
    Its imports alone set off collections that find nothing to free (2 in `state`, ~0.15 ms; a
    dozen in `run`, ~1.5 ms); what a command allocates is freed by reference counting (none
    makes garbage cycles worth a collector, not even `run`'s or `exec`'s terminal relay, a loop
    that makes none). The forked children inherit it: they exec or exit. `events`, which runs
    until it is stopped, turns the collector back on for its loop. It is on again when the
    command's main() returns (to a caller in the same process: tests, say), without a
    collection then."""
    return _GcOff()
