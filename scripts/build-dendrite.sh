#!/usr/bin/env bash
# Builds the Dendrite homeserver binaries used by the end-to-end tests and the demo into
# tools/dendrite/bin/{dendrite,generate-config,generate-keys,create-account}.
# The version is pinned by tools/dendrite/go.mod + go.sum (a module separate from the gateway's).
# Skips the build when every binary is newer than go.mod and go.sum; FORCE=1 rebuilds.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/tools/dendrite"
bins=(dendrite generate-config generate-keys create-account)

fresh=1
for b in "${bins[@]}"; do
	f="$dir/bin/$b"
	if [[ ! -x "$f" || "$f" -ot "$dir/go.mod" || "$f" -ot "$dir/go.sum" ]]; then
		fresh=0
	fi
done
if [[ "$fresh" == 1 && "${FORCE:-0}" != 1 ]]; then
	echo "build-dendrite: binaries in $dir/bin are up to date"
	exit 0
fi

echo "build-dendrite: building Dendrite (pinned in $dir/go.mod; 1-3 min cold on 2 cores)"
mkdir -p "$dir/bin"
cd "$dir"
# -mod=readonly: go.sum must already be complete; never rewrite the pinned versions here.
CGO_ENABLED=1 GOFLAGS=-mod=readonly GOWORK=off \
	go build -trimpath -o bin/ \
	github.com/element-hq/dendrite/cmd/dendrite \
	github.com/element-hq/dendrite/cmd/generate-config \
	github.com/element-hq/dendrite/cmd/generate-keys \
	github.com/element-hq/dendrite/cmd/create-account
touch "${bins[@]/#/bin/}"
echo "build-dendrite: done: $(ls "$dir/bin" | tr '\n' ' ')"
