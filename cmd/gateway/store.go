package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/signalling/matrix"
	"github.com/matrix-gateway/gateway/signalling/store"
)

// The store keeps the DM rooms of the Matrix connector.
var _ matrix.RoomStore = (*store.Store)(nil)

// storeOpenTimeout bounds connecting to the database and migrating it.
const storeOpenTimeout = 30 * time.Second

// openStore opens the configured database for the running gateway: it
// migrates the schema and marks calls a previous run left active as
// interrupted. readOnly opens it for the cdr command instead, beside a
// running gateway. Errors never show the database password.
func openStore(c configs.DatabaseConfig, log zerolog.Logger, readOnly bool) (*store.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
	defer cancel()
	s, err := store.Open(ctx, store.Config{
		Type:     c.Type,
		URI:      c.URI.Reveal(),
		Log:      log.With().Str("component", "store").Logger(),
		ReadOnly: readOnly,
	})
	if err != nil {
		return nil, fmt.Errorf("database %s %s: %w", c.Type, c.URI, err)
	}
	return s, nil
}
