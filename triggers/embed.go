// Package triggers holds the migrations a DBA applies to let the notifier see changes:
// numbered NNNN_name.up.sql / NNNN_name.down.sql files, the naming golang-migrate and
// similar tools read, embedded so `notifier migrate` needs no files on disk.
package triggers

import "embed"

// FS holds the migration files at its root.
//
//go:embed *.sql
var FS embed.FS
