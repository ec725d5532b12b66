"""One module per command; each has USAGE, OPTIONS and main(globals, options, args)."""
