"""Database access: the embedded PostgreSQL launcher, the connection pool and migrations."""
