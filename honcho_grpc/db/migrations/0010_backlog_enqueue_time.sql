-- When a message joined the embedding backlog, so GetQueueStatus can report how long the
-- oldest has waited (run_after moves on every back-off). now() is stable, so existing rows take
-- the migration's time without a table rewrite.
ALTER TABLE embedding_backlog ADD COLUMN IF NOT EXISTS enqueue_time timestamptz NOT NULL DEFAULT now();
