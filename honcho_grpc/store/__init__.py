"""The store: every SQL statement of the service lives here (asyncpg)."""
