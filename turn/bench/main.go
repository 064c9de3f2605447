// Command bench runs the embedded TURN server alone, for the side-by-side
// benchmark with coturn (scripts/bench-turn.sh). It serves until SIGINT or
// SIGTERM. Loopback peers are allowed: benchmarks only.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/turn"
)

func main() {
	listen := flag.String("listen", "127.0.0.1", "listen and relay IP")
	port := flag.Int("port", 3478, "UDP port")
	secret := flag.String("secret", "bench-secret-0123456789", "TURN REST shared secret")
	realm := flag.String("realm", "gw.test", "realm")
	listeners := flag.Int("listeners", 0, "UDP listeners (SO_REUSEPORT); 0 = one per CPU")
	relayMin := flag.Int("relay-min", 61000, "lowest relay port")
	relayMax := flag.Int("relay-max", 65535, "highest relay port")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to this `file`")
	goroutines := flag.Bool("goroutine-relays", false, "read each relay socket with its own goroutine instead of the epoll loop (turn.Config.GoroutineRelays)")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	ip, err := netip.ParseAddr(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	s, err := turn.New(turn.Config{
		Realm: *realm, Secret: *secret, ListenIP: ip, Port: *port, UDPListeners: *listeners,
		RelayPortMin: *relayMin, RelayPortMax: *relayMax, GoroutineRelays: *goroutines,
		AllowedPeers: []netip.Prefix{netip.PrefixFrom(ip, ip.BitLen())},
		Log:          log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	st := s.Stats()
	_ = s.Close()
	defer fmt.Fprintf(os.Stderr, "bench: allocations made %d, relayed to peers %d (fast path %d), to clients %d (fast path %d)\n",
		st.AllocationsTotal, st.ToPeerPackets, st.FastToPeerPackets, st.ToClientPackets, st.FastToClientPackets)
}
