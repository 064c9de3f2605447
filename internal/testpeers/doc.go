// Package testpeers starts real peers for end-to-end tests: a Dendrite homeserver, baresip SIP
// phones, sipp scenarios and a matrix-js-sdk client in headless Chromium.
//
// Every helper takes a testing.TB, binds only to 127.0.0.1, and registers a t.Cleanup that stops
// what it started. When a peer's binary is missing the helper fails the test with a hint to run
// scripts/install-deps.sh, unless GATEWAY_SKIP_PEERS=1 is set, in which case it skips the test.
package testpeers
