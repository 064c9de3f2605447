#!/usr/bin/env bash
# Local demo: Dendrite on http://127.0.0.1:8008 with the gateway's appservice registration, a
# Matrix user alice, a baresip "phone" on 127.0.0.1:5060 that answers every call with a 1 kHz
# tone, and the gateway in the foreground. Ctrl-C stops everything.
# State lives in DEMO_DIR (default ./demo); delete it to start over.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
demo="${DEMO_DIR:-$root/demo}"
hs_port=8008
phone_port=5060
number="${DEMO_NUMBER:-+12025550123}"
alice_password="${DEMO_PASSWORD:-alicepassword}"
bin="$root/tools/dendrite/bin"

for cmd in baresip sox go; do
	command -v "$cmd" >/dev/null || { echo "demo: $cmd missing: run scripts/install-deps.sh as root" >&2; exit 1; }
done
"$root/scripts/build-dendrite.sh"
mkdir -p "$demo/dendrite" "$demo/phone/rec"
demo="$(cd "$demo" && pwd)"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$hs_port" "$phone_port"; do
	if port_busy "$p"; then echo "demo: 127.0.0.1:$p is in use; stop whatever listens there" >&2; exit 1; fi
done

pids=()
cleanup() {
	trap - EXIT INT TERM
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	echo "demo: stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. Gateway config + appservice registration.
if [[ ! -f "$demo/gateway.yaml" ]]; then
	(cd "$root" && go run ./cmd/gateway init --dir "$demo" --homeserver-url "http://127.0.0.1:$hs_port" \
		--domain localhost --trunk "127.0.0.1:$phone_port")
fi
reg="$(grep -E '^\s+registration:' "$demo/gateway.yaml" | head -1 | sed -E 's/^\s*registration:\s*"?([^"#]*)"?.*/\1/' | xargs)"
[[ -n "$reg" && "$reg" != /* ]] && reg="$demo/$reg"
[[ -f "$reg" ]] || reg="$demo/registration.yaml"
[[ -f "$reg" ]] || { echo "demo: no registration file found in $demo" >&2; exit 1; }

# 2. Dendrite.
d="$demo/dendrite"
if [[ ! -f "$d/dendrite.yaml" ]]; then
	"$bin/generate-keys" -private-key "$d/matrix_key.pem" >/dev/null
	"$bin/generate-config" -ci -dir "$d" -server localhost >"$d/dendrite.yaml.orig"
	sed -E \
		-e "s#^(  private_key: ).*#\1$d/matrix_key.pem#" \
		-e 's#^(  disable_federation: ).*#\1true#' \
		-e "s#^(  config_files: ).*#\1[\"$reg\"]#" \
		-e 's#^(  level: )trace#\1info#' \
		"$d/dendrite.yaml.orig" >"$d/dendrite.yaml"
	for want in "disable_federation: true" "config_files: [\"$reg\"]" "level: info"; do
		grep -qF "$want" "$d/dendrite.yaml" || { echo "demo: patching dendrite.yaml failed ($want)" >&2; exit 1; }
	done
fi
"$bin/dendrite" -config "$d/dendrite.yaml" -http-bind-address "127.0.0.1:$hs_port" \
	-really-enable-open-registration >"$d/dendrite.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do port_busy "$hs_port" && break; sleep 0.1; done
port_busy "$hs_port" || { echo "demo: Dendrite did not start; see $d/dendrite.log" >&2; tail -20 "$d/dendrite.log" >&2; exit 1; }
sleep 0.5
"$bin/create-account" -config "$d/dendrite.yaml" -url "http://127.0.0.1:$hs_port" \
	-username alice -password "$alice_password" >/dev/null 2>&1 || true

# 3. The phone: baresip answering every call with a 1 kHz tone (the call ends after 5 minutes).
ph="$demo/phone"
[[ -f "$ph/tone.wav" ]] || sox -n -r 8000 -c 1 -b 16 "$ph/tone.wav" synth 300 sine 1000 vol 0.5
cat >"$ph/config" <<CONF
poll_method epoll
sip_listen 127.0.0.1:$phone_port
net_interface 127.0.0.1
audio_player aubridge,x
audio_alert aubridge,x
audio_source aufile,$ph/tone.wav
ausrc_srate 8000
auplay_srate 8000
ausrc_channels 1
auplay_channels 1
module_path /usr/lib/baresip/modules
module g711.so
module g722.so
module opus.so
module aufile.so
module aubridge.so
module sndfile.so
module account.so
module menu.so
snd_path $ph/rec
rtp_ports 30000-32766
CONF
: >"$ph/accounts"
digits="${number#+}"
for u in "$number" "$digits" "${digits#1}"; do
	echo "<sip:$u@127.0.0.1:$phone_port>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA" >>"$ph/accounts"
done
baresip -f "$ph" </dev/null >"$ph/baresip.log" 2>&1 &
pids+=($!)

cat <<MSG

================================================================================
 Demo running.
   Homeserver:  http://127.0.0.1:$hs_port   (server name: localhost)
   Log in with any Matrix client (e.g. Element) as  alice / $alice_password
   Dial (Element: Dial pad):  $number
   The phone answers with a 1 kHz tone; what it hears is recorded in $ph/rec/
   Conference: invite @pstn:localhost into a room, say "!conf start", call
   @pstn:localhost in that room, and "!conf dial $number" brings the phone in.
   Logs: $d/dendrite.log, $ph/baresip.log
   Ctrl-C stops everything.
================================================================================

MSG

# 4. The gateway, in the foreground.
cd "$root"
go run ./cmd/gateway run -c "$demo/gateway.yaml" &
pids+=($!)
wait "${pids[-1]}"
