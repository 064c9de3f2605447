#!/usr/bin/env bash
# Exits 0 when everything scripts/install-deps.sh installs is present, else lists what is missing.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
missing=()
for p in libopus-dev libopusfile-dev pkg-config baresip baresip-core sip-tester sox chromium iproute2 postgresql coturn modemmanager dbus-daemon alsa-utils; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("deb:$p")
done
command -v node >/dev/null || missing+=("node")
for m in matrix-js-sdk playwright-core esbuild; do
	[[ -d "$root/tools/jsclient/node_modules/$m" ]] || missing+=("npm:$m")
done
[[ -f "$root/tools/jsclient/dist/client.js" ]] || missing+=("tools/jsclient/dist/client.js")
for b in dendrite generate-config generate-keys create-account; do
	f="$root/tools/dendrite/bin/$b"
	[[ -x "$f" && ! "$f" -ot "$root/tools/dendrite/go.mod" ]] || missing+=("tools/dendrite/bin/$b")
done
if ((${#missing[@]})); then
	echo "missing: ${missing[*]}"
	exit 1
fi
