package matrix

import (
	"testing"
)

// FuzzParse feeds arbitrary event types and contents to Parse. Accepted
// input must survive Parse -> Marshal -> Parse unchanged; refused input
// must carry a typed error. The seed corpus in testdata/fuzz/FuzzParse holds
// the js-sdk-shaped samples of testdata/events and malformed variants.
func FuzzParse(f *testing.F) {
	f.Add(EventHangup, []byte(`{"call_id":"c","party_id":"p","version":"1"}`))
	f.Fuzz(func(t *testing.T, typ string, content []byte) {
		if err := checkRoundTrip(typ, content); err != nil {
			t.Fatal(err)
		}
	})
}
