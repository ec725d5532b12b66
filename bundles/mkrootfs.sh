#!/bin/sh
# Build a minimal busybox root filesystem for an OCI bundle.
#   bundles/mkrootfs.sh DEST
# Uses only Debian's busybox-static (installed with apt-get if missing). Idempotent.
set -eu
dest=${1:?usage: mkrootfs.sh DEST}
bb=/bin/busybox
# A dynamically linked busybox would not run inside the rootfs: insist on the static build.
if ! dpkg -s busybox-static >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
[ -x "$bb" ] || { echo "mkrootfs.sh: busybox-static is not installed" >&2; exit 1; }
tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/bin" "$tmp/sbin" "$tmp/usr/bin" "$tmp/usr/sbin" "$tmp/etc" "$tmp/proc" "$tmp/sys" \
         "$tmp/dev" "$tmp/tmp" "$tmp/root" "$tmp/run" "$tmp/var" "$tmp/home"
chmod 1777 "$tmp/tmp"
cp "$bb" "$tmp/bin/busybox"
# One symlink per applet (~400): one process for all of them where python3 is there (an `ln` per
# applet costs ~1 min in the emulated v2 VM), else the loop.
if command -v python3 >/dev/null 2>&1; then
  "$bb" --list | python3 -c 'import os, sys
for a in sys.stdin.read().split():
    if a != "busybox":
        os.symlink("busybox", os.path.join(sys.argv[1], a))' "$tmp/bin"
else
  for applet in $("$bb" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$tmp/bin/$applet"
  done
fi
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$tmp/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$tmp/etc/group"
echo ocirt > "$tmp/etc/hostname"
if [ -d "$dest" ]; then rm -rf "$dest"; fi
mv "$tmp" "$dest"
