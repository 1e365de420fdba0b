#!/usr/bin/env bash
# Makes (once) the venv of the Python test clients: ~/.cache/glassbox/pyclients.
# Idempotent: a venv whose stamp matches requirements.txt is left as it is.
# Prints the venv's python on the last line of stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${GLASSBOX_PYCLIENTS:-$HOME/.cache/glassbox/pyclients}"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin/python"; exit 0
fi
py="${PYTHON:-python3}"
command -v "$py" >/dev/null || { echo "install-pyclients: $py not found" >&2; exit 1; }
start=$(date +%s)
rm -rf "$venv"
"$py" -m venv "$venv"
nice -n 10 timeout 900 "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2 || {
  echo "install-pyclients: pip install failed (is the package index reachable?)" >&2; exit 1; }
echo "$want" > "$stamp"
echo "install-pyclients: venv ready in $(( $(date +%s) - start )) s" >&2
echo "$venv/bin/python"
