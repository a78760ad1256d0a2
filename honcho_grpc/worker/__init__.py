"""The background worker: a separate process that drains the Postgres queue (psycopg 3 +
psycopg_pool for the transport: LISTEN/NOTIFY with a slow poll as a safety net, claims,
leases) and runs its tasks on the same domain and store (asyncpg) as the server."""
