-- notifier 0005 down: back to 0004. Relayed events (those with an origin) leave the
-- log with the column: no rule emits them, and a name a later rule emits must never
-- replay a client's payload as a row's facts.
-- notifier needs: OWNER notifier.events
DROP FUNCTION notifier.relay(bigint, text, text, text, jsonb);
DELETE FROM notifier.events WHERE origin IS NOT NULL;
ALTER TABLE notifier.events DROP COLUMN origin;
