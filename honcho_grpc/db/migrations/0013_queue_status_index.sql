-- queue_status (workspace_id, status) lost the planner's tie-break against queue_unit while
-- the queue had no statistics yet (a fresh database, a fast-growing queue before autovacuum's
-- first ANALYZE): every message write's hold step (store/queue HOLD_SQL) then walked all the
-- workspace's pending rows instead of one unit's, growing from 1 to 8 ms per batch of 100
-- over a 15k-message ingest. Nothing needs it: reads by workspace use the primary key
-- (workspace_id, id), reads of open rows by unit queue_unit, and the worker queue_claim.
DROP INDEX IF EXISTS queue_status;
