-- notifier 0006: the fleet's lease (fleet.advertise_url). Instances of one fleet take
-- turns to lead: the one holding the lease listens, reads the log and enriches each
-- event once; the others follow it over HTTP and never read the log for live events.
-- Grant SELECT, UPDATE to the runtime role (docs/security.md).
--
-- What this installs:
--   notifier.fleet_lease   one row: the leading instance (a random id per process), the
--                          URL its followers stream from, the term (how many times the
--                          lease changed hands) and when the lease lapses unless renewed
-- Only the runtime role may read or write it: a row of a table another role cannot
-- lock, unlike an advisory lock, which any role that can connect could take and hold.

CREATE TABLE notifier.fleet_lease (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    holder     text,
    url        text,
    term       bigint      NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO notifier.fleet_lease DEFAULT VALUES;
