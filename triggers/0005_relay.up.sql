-- notifier 0005: relay (seed 003). A Socket.IO client's emit of an event the service
-- relays (socketio.relay) goes to the other clients of its account through the event
-- log, so that it is in order with the database's events, reaches every instance, and
-- is replayed to a client that resumes, like them.
-- notifier needs: OWNER notifier.events
--
-- What changes:
--   notifier.events.origin   the Socket.IO socket that sent a relayed event (its public
--                            id), which the service never delivers it back to; never
--                            NULL for a relayed event, NULL for the database's
--   notifier.relay()         writes one relayed event to the log under the commit lock
--                            and wakes the listeners; grant EXECUTE to the runtime role
--                            (docs/security.md)

ALTER TABLE notifier.events ADD COLUMN origin text;

-- relay(account, subject, origin, event, data): appends event with payload data,
-- stamped with who sent it, for account's clients but origin, and returns its id.
-- The service calls it with the account and subject of the sender's verified token:
-- routing never reads the payload, whose own accountId a client chooses. An event an
-- installed rule emits is refused: a name is the database's or relayed, never both, so
-- a relayed payload never passes for a row's facts. Call it in a transaction of its
-- own (autocommit): the commit lock it takes, which orders every event's id by commit,
-- is held until that transaction ends.
CREATE FUNCTION notifier.relay(account bigint, subject text, origin text, event text, data jsonb)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id  bigint;
    stamped jsonb;
BEGIN
    IF account IS NULL OR account <= 0 THEN
        RAISE EXCEPTION 'notifier.relay: account must be a positive id, got %', coalesce(account::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The syntax config.events demands (notifier.payload() writes the name unescaped);
    -- names of the notifier's own events (notifier.resync, notifier.error, ...) are the
    -- server's to send.
    IF event IS NULL OR event !~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$' OR event ^@ 'notifier.' THEN
        RAISE EXCEPTION 'notifier.relay: % is not an event name a client may relay', coalesce(quote_literal(event), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM notifier.rule_events r WHERE r.name = relay.event) THEN
        RAISE EXCEPTION 'notifier.relay: event % is emitted by an installed rule: an event is relayed or the database''s, never both', event
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Remove it from socketio.relay, or from the rule file.';
    END IF;
    IF data IS NULL OR jsonb_typeof(data) <> 'object' THEN
        RAISE EXCEPTION 'notifier.relay: data must be a JSON object, got %', coalesce(jsonb_typeof(data), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    stamped := data OPERATOR(pg_catalog.||) jsonb_build_object('relayedBy',
        jsonb_build_object('accountId', account, 'sub', coalesce(subject, '')));

    -- Released only after the commit is visible: ids are drawn in commit order.
    LOCK TABLE notifier.commit_lock IN EXCLUSIVE MODE;
    IF statement_timestamp() <> transaction_timestamp() THEN
        RAISE WARNING 'notifier.relay called inside a longer transaction: other event commits wait until it ends'
            USING HINT = 'Call notifier.relay in a transaction of its own.';
    END IF;
    new_id := nextval('notifier.events_id_seq');
    INSERT INTO notifier.events (id, event, row_id, account_id, row_data, origin)
    VALUES (new_id, relay.event, new_id, relay.account, stamped, coalesce(relay.origin, ''));
    PERFORM pg_notify('notifier', notifier.payload(new_id, relay.event, new_id, relay.account));
    RETURN new_id;
END
$$;
REVOKE ALL ON FUNCTION notifier.relay(bigint, text, text, text, jsonb) FROM PUBLIC;
