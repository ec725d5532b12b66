import posix

try:  # ^C before the command took over ends as the command ends one, 130 (as bin/ocirt)
    from ocirt.launch import exit_code, flush, stdio

    stdio()  # a closed fd 0-2 becomes /dev/null first, as bin/ocirt's launcher does

    from ocirt.cli import main  # after stdio: nothing of the command opened before it

    try:
        rc = exit_code(main())
    except SystemExit as e:
        rc = exit_code(e.code)
    posix._exit(flush(rc))  # as bin/ocirt ends: a stdout that cannot be written is one line
except KeyboardInterrupt:
    posix._exit(130)
except Exception as e:  # noqa: BLE001 - its modules not loaded (no fd left): one line, as bin/ocirt
    posix.write(
        2, f"ocirt: cannot start: {' '.join(str(e).split()) or type(e).__name__}\n".encode(errors="replace")
    )
    posix._exit(1)
