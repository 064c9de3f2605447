package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/matrix-gateway/gateway/configs"
)

// checkCmd validates a configuration file and the registration it names,
// printing every problem, one per line; exit 1 when there is any.
func checkCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	path := fs.String("c", "gateway.yaml", "configuration `file` to check")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: gateway check [-c FILE]\n\nValidates the configuration and its appservice registration, printing every problem.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}

	problems, cfg, err := checkFile(*path)
	if err != nil {
		fmt.Fprintf(stderr, "gateway check: %v\n", err)
		return 1
	}
	if cfg != nil {
		for _, n := range cfg.Notes() {
			fmt.Fprintf(stdout, "note: %s\n", n)
		}
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, p.String())
		}
		if len(problems) == 1 {
			fmt.Fprintf(stderr, "%s: 1 problem\n", *path)
		} else {
			fmt.Fprintf(stderr, "%s: %d problems\n", *path, len(problems))
		}
		return 1
	}
	fmt.Fprintln(stdout, "config OK")
	return 0
}

// checkFile loads a configuration and its registration and returns all
// problems of both; err is set only when the file cannot be read at all.
func checkFile(path string) ([]configs.Problem, *configs.Config, error) {
	cfg, err := configs.Load(path)
	var problems []configs.Problem
	var verr *configs.ValidationError
	switch {
	case errors.As(err, &verr):
		problems = append(problems, verr.Problems...)
	case err != nil:
		return nil, nil, err
	}
	if cfg == nil || cfg.AppService.Registration == "" {
		return problems, cfg, nil
	}
	reg, err := configs.LoadRegistration(cfg.AppService.Registration)
	if err != nil {
		problems = append(problems, configs.Problem{
			Path:    "appservice.registration",
			Message: fmt.Sprintf("cannot load the registration file: %v", err),
		})
		return problems, cfg, nil
	}
	return append(problems, cfg.CheckRegistration(reg)...), cfg, nil
}
