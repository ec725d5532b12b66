#!/bin/sh
# Point an installed bin/ocirt's #! line straight at its Python, with -IS:
#
#   scripts/direct-launcher.sh [VENV]        (default: .venv)
#
# pip installs bin/ocirt with its `#!/bin/sh` line, and the shell step then picks the interpreter
# (the one beside the script) and starts it with -I -S. Where the interpreter is known, the line
# can name it (`#!VENV/bin/python3 -IS`: one argument, which Python reads as -I -S), and every
# command saves the shell's start (~0.5 ms). The rest of the file is unchanged, and it still
# runs under sh. Left as it is when the path would not fit a #! line (spaces, other characters
# the kernel or the shell would split, or longer than 120 bytes). Run it again after each
# `pip install` into VENV: pip writes the script anew.
set -eu
venv=$(cd "${1:-.venv}" && pwd)
py=$venv/bin/python3
script=$venv/bin/ocirt
[ -x "$py" ] && [ -f "$script" ] || { echo "direct-launcher.sh: no $py or $script" >&2; exit 1; }
case $py in
  *[!A-Za-z0-9/._+-]*) echo "direct-launcher.sh: $py: not a path for a #! line; left as it is" >&2; exit 0 ;;
esac
[ ${#py} -le 120 ] || { echo "direct-launcher.sh: $py: too long for a #! line; left as it is" >&2; exit 0; }
if head -n 1 "$script" | grep -qx '#!/bin/sh'; then
  sed -i "1s|.*|#!$py -IS|" "$script"
fi
