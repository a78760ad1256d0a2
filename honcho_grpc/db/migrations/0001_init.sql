-- Initial schema. Every table carries workspace_id in its primary key and indexes, so the
-- schema can be distributed by workspace (Citus) without changes.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE workspaces (
    workspace_id      text PRIMARY KEY,
    metadata          jsonb NOT NULL DEFAULT '{}',
    configuration     jsonb NOT NULL DEFAULT '{}',
    internal_metadata jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workspaces_created ON workspaces (created_at, workspace_id);

CREATE TABLE peers (
    workspace_id      text NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    peer_id           text NOT NULL,
    metadata          jsonb NOT NULL DEFAULT '{}',
    configuration     jsonb NOT NULL DEFAULT '{}',
    internal_metadata jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, peer_id)
);
CREATE INDEX peers_created ON peers (workspace_id, created_at, peer_id);

CREATE TABLE sessions (
    workspace_id      text NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    session_id        text NOT NULL,
    active            boolean NOT NULL DEFAULT true,
    metadata          jsonb NOT NULL DEFAULT '{}',
    configuration     jsonb NOT NULL DEFAULT '{}',
    internal_metadata jsonb NOT NULL DEFAULT '{}',
    -- Highest sequence number handed out; bumped under the row lock, so numbers are gap-free.
    last_seq          bigint NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, session_id)
);
CREATE INDEX sessions_created ON sessions (workspace_id, created_at, session_id);

CREATE TABLE session_peers (
    workspace_id   text NOT NULL,
    session_id     text NOT NULL,
    peer_id        text NOT NULL,
    observe_me     boolean,          -- NULL: inherit the peer's setting
    observe_others boolean,          -- NULL: false
    joined_at      timestamptz NOT NULL DEFAULT now(),
    left_at        timestamptz,      -- NULL while a member
    PRIMARY KEY (workspace_id, session_id, peer_id),
    FOREIGN KEY (workspace_id, session_id) REFERENCES sessions ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, peer_id) REFERENCES peers ON DELETE CASCADE
);
CREATE INDEX session_peers_peer ON session_peers (workspace_id, peer_id, session_id);

CREATE TABLE messages (
    workspace_id      text NOT NULL,
    message_id        text NOT NULL,
    session_id        text NOT NULL,
    peer_id           text NOT NULL,
    seq               bigint NOT NULL,
    content           text NOT NULL,
    metadata          jsonb NOT NULL DEFAULT '{}',
    configuration     jsonb NOT NULL DEFAULT '{}',
    internal_metadata jsonb NOT NULL DEFAULT '{}',
    token_count       integer NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    -- Full text over the speaker and the content: questions often name the speaker.
    search_text       tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', replace(peer_id, '_', ' ')), 'B')
        || setweight(to_tsvector('english', content), 'A')
    ) STORED,
    PRIMARY KEY (workspace_id, message_id),
    UNIQUE (workspace_id, session_id, seq),
    FOREIGN KEY (workspace_id, session_id) REFERENCES sessions ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, peer_id) REFERENCES peers ON DELETE CASCADE
);
CREATE INDEX messages_peer ON messages (workspace_id, peer_id, created_at);
CREATE INDEX messages_search ON messages USING gin (search_text);

-- Vectors live apart from messages: writing one later does not rewrite the message row and
-- its indexes, and CreateMessages never waits for the model.
CREATE TABLE message_embeddings (
    workspace_id text NOT NULL,
    message_id   text NOT NULL,
    model        text NOT NULL,
    embedding    vector(384) NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, message_id),
    FOREIGN KEY (workspace_id, message_id) REFERENCES messages ON DELETE CASCADE
);
CREATE INDEX message_embeddings_hnsw ON message_embeddings USING hnsw (embedding vector_cosine_ops);

-- The durable embedding backlog: one row per message still to embed, written with the message.
-- No foreign key to messages: its per-row check made bulk imports 6x slower (measured with
-- bench/ingest.py). Message deletes remove their backlog rows explicitly (store/backlog.py),
-- and the drainer drops any row whose message is gone.
CREATE TABLE embedding_backlog (
    workspace_id text NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    message_id   text NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    run_after    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, message_id)
);
CREATE INDEX embedding_backlog_due ON embedding_backlog (run_after);

CREATE TABLE conclusions (
    workspace_id       text NOT NULL,
    conclusion_id      text NOT NULL,
    observer_id        text NOT NULL,
    observed_id        text NOT NULL,
    session_id         text,
    content            text NOT NULL,
    level              text NOT NULL DEFAULT 'explicit'
                       CHECK (level IN ('explicit', 'deductive', 'inductive', 'contradiction')),
    embedding          vector(384),
    model              text,
    premise_ids        text[] NOT NULL DEFAULT '{}',
    source_message_ids text[] NOT NULL DEFAULT '{}',
    times_derived      integer NOT NULL DEFAULT 1,
    internal_metadata  jsonb NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    invalidated_at     timestamptz,
    superseded_by      text,
    PRIMARY KEY (workspace_id, conclusion_id),
    FOREIGN KEY (workspace_id, observer_id) REFERENCES peers ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, observed_id) REFERENCES peers ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, session_id) REFERENCES sessions ON DELETE CASCADE
);
CREATE INDEX conclusions_pair ON conclusions (workspace_id, observer_id, observed_id, created_at);
CREATE INDEX conclusions_created ON conclusions (workspace_id, created_at, conclusion_id);
CREATE INDEX conclusions_sources ON conclusions USING gin (source_message_ids);
CREATE INDEX conclusions_premises ON conclusions USING gin (premise_ids);
CREATE INDEX conclusions_hnsw ON conclusions USING hnsw (embedding vector_cosine_ops);

CREATE TABLE summaries (
    workspace_id     text NOT NULL,
    session_id       text NOT NULL,
    summary_type     text NOT NULL CHECK (summary_type IN ('short', 'long')),
    content          text NOT NULL,
    last_message_id  text NOT NULL,
    last_message_seq bigint NOT NULL,
    token_count      integer NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, session_id, summary_type),
    FOREIGN KEY (workspace_id, session_id) REFERENCES sessions ON DELETE CASCADE
);

CREATE TABLE peer_cards (
    workspace_id text NOT NULL,
    observer_id  text NOT NULL,
    observed_id  text NOT NULL,
    entries      text[] NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, observer_id, observed_id),
    FOREIGN KEY (workspace_id, observer_id) REFERENCES peers ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, observed_id) REFERENCES peers ON DELETE CASCADE
);

CREATE TABLE webhook_endpoints (
    workspace_id text NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    endpoint_id  text NOT NULL,
    url          text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, endpoint_id),
    UNIQUE (workspace_id, url)
);

-- Replays of writes carrying a request_id return the stored first response. Not tied to the
-- workspace by a foreign key: a replayed DeleteWorkspace must still find its key.
CREATE TABLE idempotency_keys (
    workspace_id text NOT NULL,
    request_id   text NOT NULL,
    method       text NOT NULL,
    request_hash bytea NOT NULL,
    response     bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, request_id)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Background work. Rows are written in the same transaction as the write that causes them.
CREATE TABLE queue (
    workspace_id  text NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    id            bigint GENERATED ALWAYS AS IDENTITY,
    task_type     text NOT NULL,
    work_unit_key text NOT NULL,
    session_id    text,
    payload       jsonb NOT NULL DEFAULT '{}',
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'in_progress', 'completed', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    run_after     timestamptz NOT NULL DEFAULT now(),
    last_error    text,
    trace_context jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, session_id) REFERENCES sessions ON DELETE CASCADE
);
CREATE INDEX queue_open ON queue (work_unit_key, id) WHERE status IN ('pending', 'in_progress');
CREATE INDEX queue_status ON queue (workspace_id, status);
