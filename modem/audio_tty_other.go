//go:build !linux

package modem

import "os"

// makeRaw is a no-op where the gateway does not drive modem ttys.
func makeRaw(*os.File) error { return nil }
