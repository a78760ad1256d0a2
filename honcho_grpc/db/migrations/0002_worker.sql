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

-- Claiming a work unit: the oldest head row (a unit's oldest open row) that is due and whose
-- unit nobody holds gets its unit leased to the caller. One round trip. The planner settings
-- keep it on the indexes whatever the statistics say: right after a burst into an empty
-- table they claim "1 row", and a plan built on that costs O(rows^2).
CREATE FUNCTION honcho_claim(p_worker text, p_lease double precision, p_only text[])
RETURNS TABLE (workspace_id text, work_unit_key text)
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off
SET enable_hashjoin = off SET enable_mergejoin = off SET lock_timeout = '200ms'
AS $$
#variable_conflict use_column
DECLARE
    c record;
BEGIN
    -- Fast path: the oldest open rows (most claims end here). SKIP LOCKED passes over rows
    -- another transaction is changing right now.
    FOR c IN
        SELECT q.workspace_id AS ws, q.work_unit_key AS unit, q.id FROM queue q
        WHERE q.status IN ('pending', 'in_progress')
          AND (p_only IS NULL OR q.workspace_id = ANY(p_only))
        ORDER BY q.id LIMIT 64
        FOR UPDATE OF q SKIP LOCKED
    LOOP
        IF honcho_try_lease(c.ws, c.unit, c.id, p_worker, p_lease) THEN
            RETURN QUERY SELECT c.ws, c.unit;
            RETURN;
        END IF;
    END LOOP;
    -- Slow path: the head of every open unit (a loose index scan over the units), oldest
    -- head first. O(units), for when the oldest rows all belong to units being worked on.
    FOR c IN
        WITH RECURSIVE units AS (
            (SELECT u.workspace_id AS ws, u.work_unit_key AS unit FROM queue u
             WHERE u.status IN ('pending', 'in_progress')
             ORDER BY u.workspace_id, u.work_unit_key LIMIT 1)
            UNION ALL
            SELECT n.ws, n.unit FROM units p CROSS JOIN LATERAL (
                SELECT u.workspace_id AS ws, u.work_unit_key AS unit FROM queue u
                WHERE u.status IN ('pending', 'in_progress')
                  AND (u.workspace_id, u.work_unit_key) > (p.ws, p.unit)
                ORDER BY u.workspace_id, u.work_unit_key LIMIT 1) n
        )
        SELECT units.ws, units.unit, h.id FROM units CROSS JOIN LATERAL (
            SELECT q.id FROM queue q
            WHERE q.workspace_id = units.ws AND q.work_unit_key = units.unit
              AND q.status IN ('pending', 'in_progress')
            ORDER BY q.id LIMIT 1) h
        WHERE (p_only IS NULL OR units.ws = ANY(p_only))
          AND NOT EXISTS (SELECT 1 FROM work_unit_leases l WHERE l.workspace_id = units.ws
                          AND l.work_unit_key = units.unit AND l.expires_at > now())
        ORDER BY h.id
    LOOP
        IF honcho_try_lease(c.ws, c.unit, c.id, p_worker, p_lease) THEN
            RETURN QUERY SELECT c.ws, c.unit;
            RETURN;
        END IF;
    END LOOP;
END $$;

-- Lease the unit of row `p_id` if that row is the unit's head, is due, and nobody holds the
-- unit (an expired lease is taken over). False also when a lock is not granted at once.
CREATE FUNCTION honcho_try_lease(p_ws text, p_unit text, p_id bigint, p_worker text,
                                 p_lease double precision) RETURNS boolean
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off
AS $$
DECLARE
    head record;
BEGIN
    SELECT h.id, h.status, h.run_after INTO head FROM queue h
    WHERE h.workspace_id = p_ws AND h.work_unit_key = p_unit
      AND h.status IN ('pending', 'in_progress')
    ORDER BY h.id LIMIT 1;
    -- In order: only a unit's oldest open row opens it, and a head waiting for its retry
    -- holds the whole unit back.
    IF head.id IS DISTINCT FROM p_id
       OR (head.status = 'pending' AND head.run_after > now()) THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM work_unit_leases l WHERE l.workspace_id = p_ws
               AND l.work_unit_key = p_unit AND l.expires_at > now()) THEN
        RETURN false;
    END IF;
    BEGIN
        INSERT INTO work_unit_leases AS l (workspace_id, work_unit_key, worker_id, expires_at)
        VALUES (p_ws, p_unit, p_worker, now() + p_lease * interval '1 second')
        ON CONFLICT (workspace_id, work_unit_key) DO UPDATE
            SET worker_id = EXCLUDED.worker_id, expires_at = EXCLUDED.expires_at,
                acquired_at = now()
            WHERE l.expires_at <= now();
        RETURN FOUND;
    EXCEPTION WHEN lock_not_available THEN
        RETURN false;  -- another worker is taking it at this very moment
    END;
END $$;
