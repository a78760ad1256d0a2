-- The worker's side of the queue: leases per work unit, retry bookkeeping, token usage,
-- dream state, and the events feed. Independent of 0003, so it may be applied after it.

-- One row per work unit a worker owns. The unique key is the exclusive lock on the unit;
-- `expires_at` is pushed forward by the owner's heartbeat, and a crashed owner's row is taken
-- over (ON CONFLICT ... WHERE expires_at <= now()) once it lapses.
CREATE TABLE work_unit_leases (
    workspace_id  text NOT NULL,
    work_unit_key text NOT NULL,
    worker_id     text NOT NULL,
    acquired_at   timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, work_unit_key)
);
CREATE INDEX work_unit_leases_worker ON work_unit_leases (worker_id);

ALTER TABLE queue ADD COLUMN claimed_by text;
ALTER TABLE queue ADD COLUMN usage jsonb;
ALTER TABLE queue ADD COLUMN completed_at timestamptz;

-- Claiming scans open rows oldest first; a unit's head and batch are read by unit.
CREATE INDEX queue_claim ON queue (id) WHERE status IN ('pending', 'in_progress');
CREATE INDEX queue_unit ON queue (workspace_id, work_unit_key, id)
    WHERE status IN ('pending', 'in_progress');
-- When nothing is due, workers sleep until the earliest retry.
CREATE INDEX queue_retry_due ON queue (run_after) WHERE status = 'pending';
CREATE INDEX queue_completed ON queue (completed_at) WHERE status = 'completed';
-- Exact deduplication of derived conclusions on normalised content (trim, lowercase,
-- collapsed whitespace) among the live conclusions of one pair and level.
CREATE INDEX conclusions_content_key ON conclusions (
    workspace_id, observer_id, observed_id, level,
    md5(lower(regexp_replace(btrim(content), '\s+', ' ', 'g')))
) WHERE invalidated_at IS NULL;
-- Idempotency of derivation: which queue rows a conclusion came from.
CREATE INDEX conclusions_queue_ids ON conclusions
    USING gin ((internal_metadata -> 'queue_ids'));

-- When each pair last dreamt, and how many explicit conclusions it had then.
CREATE TABLE dream_state (
    workspace_id     text NOT NULL,
    observer_id      text NOT NULL,
    observed_id      text NOT NULL,
    last_dream_at    timestamptz NOT NULL,
    last_dream_count integer NOT NULL,
    PRIMARY KEY (workspace_id, observer_id, observed_id),
    FOREIGN KEY (workspace_id, observer_id) REFERENCES peers ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, observed_id) REFERENCES peers ON DELETE CASCADE
);

-- messages.created events for EventService.WatchEvents. One notification per statement and
-- session (not per row), so bulk imports pay one call, and the payload stays far below
-- NOTIFY's 8000-byte limit (ids capped at 20).
CREATE FUNCTION honcho_messages_created() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT workspace_id, session_id, count(*) AS n, min(seq) AS first_seq,
               max(seq) AS last_seq, array_agg(DISTINCT peer_id) AS peers,
               (array_agg(message_id ORDER BY seq))[1:20] AS ids
        FROM new_messages GROUP BY workspace_id, session_id
    LOOP
        PERFORM pg_notify('honcho_events', json_build_object(
            'type', 'messages.created', 'workspace_id', r.workspace_id,
            'session_id', r.session_id,
            'peer_id', CASE WHEN cardinality(r.peers) = 1 THEN r.peers[1] ELSE '' END,
            'peers', to_json(r.peers[1:10]), 'time', now(),
            'data', json_build_object('count', r.n, 'first_seq', r.first_seq,
                                      'last_seq', r.last_seq, 'message_ids', to_json(r.ids))
        )::text);
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER messages_created_event AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_messages
    FOR EACH STATEMENT EXECUTE FUNCTION honcho_messages_created();
