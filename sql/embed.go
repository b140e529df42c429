// Package sql holds the SQL the notifier runs that is not a migration: the reference
// clinic schema and seed data (for tests and the demo) and the enrichment queries.
// Plain SQL stays SQL; the files are embedded so the binary runs from any directory.
package sql

import _ "embed"

// Schema creates the reference clinic tables if they do not exist. The notifier never
// runs it on a production database; tests and `notifier demo` do.
//
//go:embed schema.sql
var Schema string

// Seed fills empty reference tables with two accounts' statuses, contacts, patients,
// procedures and doctors.
//
//go:embed seed.sql
var Seed string

// Appointments selects (event id, payload JSON text) for the appointment event ids in
// $1: the row as the log recorded it at commit, joined with its account's rows now.
//
//go:embed appointments.sql
var Appointments string

// Doctors selects (event id, payload JSON text) for the doctor event ids in $1, the
// same way.
//
//go:embed doctors.sql
var Doctors string
