#!/usr/bin/env bash
# Installs everything the tests and the demo need on a fresh Debian machine that has only Go and gcc:
# Debian packages (libopus, baresip, sipp, sox, chromium, alsa-utils, ...), the npm packages of tools/jsclient
# (pinned by its package-lock.json) and the Dendrite binaries (scripts/build-dendrite.sh).
# Idempotent: each step is skipped when its result is already present. Debian packages need root.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pkgs=(libopus-dev libopusfile-dev pkg-config baresip baresip-core sip-tester sox chromium iproute2 postgresql nodejs npm coturn modemmanager dbus-daemon alsa-utils)

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg -s "$p" >/dev/null 2>&1; then
		missing+=("$p")
	fi
done
# nodejs/npm may come from elsewhere than Debian (e.g. nodesource): accept working binaries.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
	filtered=()
	for p in "${missing[@]}"; do
		[[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p")
	done
	missing=("${filtered[@]}")
fi

if ((${#missing[@]})); then
	echo "install-deps: installing Debian packages: ${missing[*]}"
	if [[ "$(id -u)" != 0 ]]; then
		echo "install-deps: need root for apt-get (missing: ${missing[*]})" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	echo "install-deps: Debian packages present"
fi

# Browser harness: exact versions from the committed lock file.
js="$root/tools/jsclient"
if [[ ! -d "$js/node_modules/matrix-js-sdk" || ! -d "$js/node_modules/playwright-core" || ! -d "$js/node_modules/esbuild" \
	|| "$js/node_modules/.package-lock.json" -ot "$js/package-lock.json" ]]; then
	echo "install-deps: npm ci in tools/jsclient"
	(cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
else
	echo "install-deps: tools/jsclient node_modules present"
fi
(cd "$js" && node build.mjs)

# Go modules of the gateway, so the tests (which run without network, see the Makefile) find them.
(cd "$root" && go mod download)

"$root/scripts/build-dendrite.sh"
