package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// insertSQL inserts $1 appointments of account $2 (seed doctor 1, patient 1, status
// Agendado), each with its procedure link and $3 bytes of notes (none when 0), in one
// statement and so one transaction, as the clinic app does when a dashboard books an
// appointment. It returns the appointment ids in insert order.
const insertSQL = `WITH a AS (
    INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId", notes)
    SELECT now() AT TIME ZONE 'UTC', '09:00', '09:15', 1, 1, 1, $2::int,
           CASE WHEN $3::int > 0 THEN repeat('x', $3::int) END
    FROM generate_series(1, $1::int)
    RETURNING id)
INSERT INTO appointment_procedures ("appointmentId", "procedureId")
SELECT id, 1 FROM a
RETURNING "appointmentId"`

// insertOne commits one appointment of account 1 and returns its id.
func insertOne(ctx context.Context, conn *pgx.Conn) (int64, error) {
	return insertOneFor(ctx, conn, 1, 0)
}

// insertOneFor commits one appointment of account with notes bytes of notes and
// returns its id.
func insertOneFor(ctx context.Context, conn *pgx.Conn, account int64, notes int) (int64, error) {
	var id int64
	if err := conn.QueryRow(ctx, insertSQL, 1, account, notes).Scan(&id); err != nil {
		return 0, fmt.Errorf("insert appointment: %w", err)
	}
	return id, nil
}

// insertMany commits n appointments of account 1 in one transaction.
func insertMany(ctx context.Context, conn *pgx.Conn, n int) error {
	tag, err := conn.Exec(ctx, insertSQL, n, 1, 0)
	if err != nil {
		return fmt.Errorf("insert %d appointments: %w", n, err)
	}
	if tag.RowsAffected() != int64(n) {
		return fmt.Errorf("insert %d appointments: %d rows", n, tag.RowsAffected())
	}
	return nil
}
