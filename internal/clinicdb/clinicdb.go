// Package clinicdb prepares a database as the clinic app would have it, plus the
// notifier's triggers: for the demo and for tests.
package clinicdb

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgnotifier/notifier/internal/migrate"
	"github.com/pgnotifier/notifier/sql"
	"github.com/pgnotifier/notifier/triggers"
)

// Prepare creates the reference clinic schema where missing, installs the notifier's
// migrations, then seeds empty tables. It returns the migrations it applied.
func Prepare(ctx context.Context, conn *pgx.Conn) ([]migrate.Migration, error) {
	if _, err := conn.Exec(ctx, sql.Schema); err != nil {
		return nil, fmt.Errorf("create clinic schema: %w", err)
	}
	migrations, err := migrate.Load(triggers.FS)
	if err != nil {
		return nil, err
	}
	applied, err := migrate.Up(ctx, conn, migrations)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, sql.Seed); err != nil {
		return nil, fmt.Errorf("seed clinic data: %w", err)
	}
	return applied, nil
}

// PrepareURL is Prepare on a new connection to connString; it fits pgtest.Main.
func PrepareURL(ctx context.Context, connString string) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	_, err = Prepare(ctx, conn)
	return err
}
