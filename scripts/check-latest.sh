#!/usr/bin/env bash
# The drift check: build a separate environment with the newest releases that
# pyproject.toml's ranges allow (what `pip install .` gives a library user
# today), list what differs from the lock, and run the checks there.
#   bash scripts/check-latest.sh               # venv in .venv-latest, rebuilt every time
#   bash scripts/check-latest.sh -k encoders   # extra arguments go to pytest
# Exit status: the test command's. A failure here and a pass with the lock
# (bash scripts/test.sh) means a new release broke fmrecon: fix it, or bound the
# range in pyproject.toml, then refresh the lock (bash scripts/lock.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export FMRECON_VENV="${FMRECON_LATEST_VENV:-$root/.venv-latest}"
export FMRECON_LOCK=none
rm -rf "$FMRECON_VENV"
# shellcheck source=bootstrap.sh
source "$root/scripts/bootstrap.sh"
pyver="$(python -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
lock="$root/requirements/lock-py$pyver.txt"
echo "== newest releases allowed, against the lock (${lock#"$root"/}) =="
python - "$lock" <<'PY'
import re
import sys
from importlib import metadata


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


locked = {}
try:
    for line in open(sys.argv[1]):
        m = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", line)
        if m:
            locked[norm(m[1])] = m[2]
except FileNotFoundError:
    pass
installed = {norm(d.metadata["Name"]): d.version for d in metadata.distributions()}
rows = sorted(set(locked) | set(installed))
newer = [(n, locked.get(n, "-"), installed.get(n, "-")) for n in rows
         if locked.get(n) != installed.get(n) and n not in ("fmrecon", "fastmri")]
for name, old, new in newer:
    print(f"  {name:28s} lock {old:18s} newest {new}")
print(f"  {len(newer)} of {len(rows)} packages differ from the lock" if newer
      else "  the newest releases are the locked ones")
PY
echo "== checks on the newest releases =="
bash "$root/scripts/test.sh" "$@"
