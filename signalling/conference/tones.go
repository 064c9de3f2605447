package conference

import (
	"time"

	"github.com/matrix-gateway/gateway/media"
)

// The conference speaks in short tones (documented in docs/conferences.md):
//
//	PIN prompt   three short 660 Hz beeps, repeated every few seconds
//	wrong PIN    a low 400 Hz tone, then the prompt again
//	refused      a long low 400 Hz tone, then the gateway hangs up
//	join         880 Hz then 1320 Hz (someone joined; you joined)
//	leave        1320 Hz then 880 Hz (someone left)
//	mute/unmute  one low / one high 1040 Hz-ish blip after *6
//
// Test tones of participants should stay away from these frequencies.
const toneLevel = -16 // dBFS

func seg(f float64, ms int) media.ToneSegment {
	return media.ToneSegment{Freq1: f, Dur: time.Duration(ms) * time.Millisecond, DBFS: toneLevel}
}

func gap(ms int) media.ToneSegment {
	return media.ToneSegment{Dur: time.Duration(ms) * time.Millisecond}
}

func promptTone(rate int) media.PCMSource {
	return media.NewToneSource(rate, seg(660, 150), gap(120), seg(660, 150), gap(120), seg(660, 150))
}

func retryTone(rate int) media.PCMSource {
	return media.NewToneSource(rate, seg(400, 500))
}

func wrongTone(rate int) media.PCMSource {
	return media.NewToneSource(rate, seg(400, 800))
}

func joinTone(rate int) media.PCMSource {
	return media.NewToneSource(rate, seg(880, 120), seg(1320, 160))
}

func leaveTone(rate int) media.PCMSource {
	return media.NewToneSource(rate, seg(1320, 120), seg(880, 160))
}

func muteTone(rate int) media.PCMSource {
	return media.NewToneSource(rate, seg(780, 200))
}

func unmuteTone(rate int) media.PCMSource {
	return media.NewToneSource(rate, seg(1040, 200))
}
