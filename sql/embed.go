// Package sql holds the reference clinic schema and seed data (for tests and the demo),
// embedded so the binary runs from any directory, and the clinic's enrichment queries
// (appointments.sql, doctors.sql), which triggers/clinic.yaml names and migration 0004
// installs as functions: the service runs them from the database, not from here.
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

// Messages creates Avon's messages table (seed 003), which triggers/examples/messages.yaml
// publishes, if it does not exist.
//
//go:embed messages.sql
var Messages string
