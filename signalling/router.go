package signalling

import (
	"context"
	"fmt"
)

// Route sends calls to numbers it matches through one dialer (a trunk).
type Route struct {
	Name   string
	Match  func(e164 string) bool // nil matches every number
	Dialer Dialer
}

// StaticRouter tries its routes in order and takes the first that matches.
type StaticRouter struct {
	Routes []Route
}

var _ Router = (*StaticRouter)(nil)

// Route implements Router.
func (r *StaticRouter) Route(_ context.Context, _, to Party) (Dialer, error) {
	for _, rt := range r.Routes {
		if rt.Match == nil || rt.Match(to.Number) {
			return rt.Dialer, nil
		}
	}
	return nil, NewCauseError(CauseNotFound, fmt.Sprintf("no route to %s", to.Number), nil)
}
