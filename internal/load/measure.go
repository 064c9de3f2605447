package load

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/matrix-gateway/gateway/codecs/g711"
	"github.com/matrix-gateway/gateway/codecs/opus"
	"github.com/matrix-gateway/gateway/media"
)

// resources is a snapshot of what the process holds.
type resources struct {
	heap, rss           int64
	goroutines, sockets int
}

// takeResources collects garbage first so the heap figure is live memory.
func takeResources() resources {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r := resources{heap: int64(ms.HeapInuse), goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		var size, resident int64
		if _, err := fmt.Sscan(string(b), &size, &resident); err == nil {
			r.rss = resident * int64(os.Getpagesize())
		}
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, e := range ents {
			if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
				r.sockets++
			}
		}
	}
	return r
}

// processCPU returns the user+system CPU time the process has used.
func processCPU() time.Duration { return rusage(syscall.RUSAGE_SELF) }

// rusageThread is Linux's RUSAGE_THREAD, absent from package syscall.
const rusageThread = 1

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CodecCeiling measures the codec work of one bridged call for one 20 ms
// frame in both directions, as media's BenchmarkCodecOnlyFrame does: Opus
// (a 48 kHz browser stream) decoded straight to 8 kHz, PCMU encoded; PCMU
// decoded, Opus narrowband encoded from 8 kHz at complexity. It runs
// frames iterations on one locked OS thread and returns that thread's CPU
// time per iteration.
func CodecCeiling(frames, complexity, bitrate int) (time.Duration, error) {
	enc48, err := opus.NewEncoder(48000, opus.Options{})
	if err != nil {
		return 0, err
	}
	var opusIn, pcmuIn [][]byte
	g48, g8 := media.NewToneGenerator(440, 48000), media.NewToneGenerator(1000, 8000)
	f48, f8 := make([]int16, 960), make([]int16, 160)
	for range 50 {
		g48.Fill(f48)
		b := make([]byte, opus.MaxPacket)
		n, err := enc48.Encode(f48, b)
		if err != nil {
			return 0, err
		}
		opusIn = append(opusIn, b[:n])
		g8.Fill(f8)
		u := make([]byte, 160)
		g711.EncodeULaw(u, f8)
		pcmuIn = append(pcmuIn, u)
	}
	dec, err := opus.NewDecoder(8000)
	if err != nil {
		return 0, err
	}
	enc, err := opus.NewEncoder(8000, opus.Options{Complexity: complexity, Bitrate: bitrate, FEC: true})
	if err != nil {
		return 0, err
	}
	pcm := make([]int16, 960)
	out := make([]byte, opus.MaxPacket)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := rusage(rusageThread)
	for i := range frames {
		n, err := dec.Decode(opusIn[i%50], pcm)
		if err != nil {
			return 0, err
		}
		g711.EncodeULaw(out, pcm[:n])
		m := g711.DecodeULaw(pcm, pcmuIn[i%50])
		if _, err := enc.Encode(pcm[:m], out); err != nil {
			return 0, err
		}
	}
	return (rusage(rusageThread) - start) / time.Duration(frames), nil
}
