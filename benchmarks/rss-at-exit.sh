#!/bin/sh
# A command's memory where it peaks, without the noise of address-space layout:
#
#   benchmarks/rss-at-exit.sh COMMAND [ARGS...]
#
# runs COMMAND once with ASLR off (setarch -R) and a preloaded _exit() that reads
# /proc/self/status and /proc/self/smaps before the process ends (ocirt's commands end with
# os._exit after their last step, where their RSS is at its peak), and prints its VmHWM and
# where it is: anonymous (the heap, the rest), file pages by file. A process that ends
# otherwise (exit(), a signal, an exec) prints nothing.
#
# bench.py's peak RSS (ru_maxrss, ASLR on) moves by ~0.1 MiB from run to run with where the
# libraries fall against the 64 KiB windows the kernel maps a file's pages in; with ASLR off the
# same build gives the same numbers every run, so two builds can be told apart by tens of KiB
# with one run each (docs/PERFORMANCE.md, "The script Python compiles"). The numbers are those
# of one layout, not the medians users see: compare builds with it, report with bench.py.
# Needs a C compiler (cc) and setarch (util-linux).
set -eu
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/at_exit.c" <<'EOF'
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static void copy(const char *from, int to) {
    char buf[65536];
    ssize_t n;
    int fd = open(from, O_RDONLY);
    if (fd < 0)
        return;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (write(to, buf, n) != n)
            break;
    close(fd);
}

void _exit(int code) {
    const char *out = getenv("RSS_AT_EXIT");
    if (out) {
        char path[4096];
        snprintf(path, sizeof path, "%s.%d", out, (int)getpid());
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            copy("/proc/self/status", fd);
            if (write(fd, "@@smaps\n", 8) == 8)
                copy("/proc/self/smaps", fd);
            close(fd);
        }
    }
    syscall(SYS_exit_group, code);
    for (;;)
        ;
}
EOF
cc -shared -fPIC -O2 -o "$work/at_exit.so" "$work/at_exit.c"
rc=0
RSS_AT_EXIT="$work/out" LD_PRELOAD="$work/at_exit.so" setarch "$(uname -m)" -R "$@" || rc=$?
for f in "$work"/out.*; do
    [ -e "$f" ] || continue
    awk -v pid="${f##*.}" '
        /^@@smaps/ { smaps = 1; next }
        !smaps && /^(VmHWM|VmRSS|RssAnon|RssFile):/ { status = status " " $1 " " $2 }
        smaps && /^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6 ? $6 : "[anon]"); sub(".*/", "", name); next }
        smaps && /^Rss:/ { kib[name] += $2 }
        END {
            print "pid " pid ":" status " (KiB)"
            for (n in kib) if (kib[n] > 0) printf "  %7d  %s\n", kib[n], n | "sort -rn"
        }' "$f"
done
exit $rc
