"""The background worker: a separate process that drains the Postgres queue (psycopg 3 +
psycopg_pool, LISTEN/NOTIFY with a slow poll as a safety net)."""
