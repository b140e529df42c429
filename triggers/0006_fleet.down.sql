-- notifier 0006 down: back to 0005. Running instances with fleet.advertise_url set stop
-- leading and following; each then reads and enriches the log itself.
DROP TABLE notifier.fleet_lease;
