package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/matrix-gateway/gateway/modem"
)

// diallerFlags parses the flags of the dialler commands and the positional
// arguments they take (want of them).
func diallerFlags(name, argsUsage string, want int, args []string, stderr io.Writer) (fs *flag.FlagSet, bus *string, follow *time.Duration, code int) {
	fs = flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := "session"
	if a := os.Getenv("GATEWAY_DIALLER_BUS"); a != "" {
		def = a
	}
	bus = fs.String("bus", def, `bus of the dialler API: "session", "system" or a D-Bus address (env GATEWAY_DIALLER_BUS)`)
	if name == "dial" {
		follow = fs.Duration("follow", 0, "print the call's signals until it ends or this much time passes (0: return at once)")
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: gateway %s [flags] %s\n", name, argsUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return fs, bus, follow, 0
		}
		return fs, bus, follow, 2
	}
	if fs.NArg() != want {
		fs.Usage()
		return fs, bus, follow, 2
	}
	return fs, bus, follow, -1
}

func diallerClient(bus string, stderr io.Writer, name string) (*modem.DiallerClient, func(), bool) {
	conn, err := modem.ConnectBus(bus)
	if err != nil {
		fmt.Fprintf(stderr, "gateway %s: %v\n", name, err)
		return nil, nil, false
	}
	return modem.NewDiallerClient(conn), func() { _ = conn.Close() }, true
}

// dialCmd places a call through the dialler API: `gateway dial NUMBER`.
func dialCmd(args []string, stdout, stderr io.Writer) int {
	fs, bus, follow, code := diallerFlags("dial", "NUMBER", 1, args, stderr)
	if code >= 0 {
		return code
	}
	c, done, ok := diallerClient(*bus, stderr, "dial")
	if !ok {
		return 1
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second+*follow)
	defer cancel()
	var sigs <-chan modem.DiallerSignal
	if *follow > 0 {
		var err error
		if sigs, err = c.Subscribe(ctx); err != nil {
			fmt.Fprintf(stderr, "gateway dial: %v\n", err)
			return 1
		}
	}
	id, route, err := c.Dial(ctx, fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "gateway dial: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\t%s\n", id, route)
	if *follow <= 0 {
		return 0
	}
	timer := time.NewTimer(*follow)
	defer timer.Stop()
	for {
		select {
		case s, ok := <-sigs:
			if !ok {
				return 1
			}
			if len(s.Args) == 0 || s.Args[0] != id {
				continue
			}
			fmt.Fprintf(stdout, "%s %v\n", s.Name, s.Args[1:])
			if s.Name == "CallStateChanged" && len(s.Args) > 1 && s.Args[1] == modem.StateEnded {
				return 0
			}
		case <-timer.C:
			return 0
		}
	}
}

// callsCmd lists the live calls: `gateway calls`.
func callsCmd(args []string, stdout, stderr io.Writer) int {
	_, bus, _, code := diallerFlags("calls", "", 0, args, stderr)
	if code >= 0 {
		return code
	}
	c, done, ok := diallerClient(*bus, stderr, "calls")
	if !ok {
		return 1
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls, err := c.ListCalls(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "gateway calls: %v\n", err)
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNUMBER\tDIRECTION\tSTATE\tROUTE")
	for _, k := range calls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Number, k.Direction, k.State, k.Route)
	}
	_ = tw.Flush()
	return 0
}

// hangupCmd ends a call: `gateway hangup ID`.
func hangupCmd(args []string, stdout, stderr io.Writer) int {
	fs, bus, _, code := diallerFlags("hangup", "ID", 1, args, stderr)
	if code >= 0 {
		return code
	}
	c, done, ok := diallerClient(*bus, stderr, "hangup")
	if !ok {
		return 1
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Hangup(ctx, fs.Arg(0)); err != nil {
		fmt.Fprintf(stderr, "gateway hangup: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "hung up %s\n", fs.Arg(0))
	return 0
}
