-- Vector search within one session or one peer's messages. A filtered HNSW scan walks the
-- graph until it has found enough rows of the scope: for a session holding 5% of a
-- workspace's 100k vectors that is ~20 times the candidates asked for (70 ms, measured with
-- bench/search.py). Small scopes are cheaper to rank exactly, reading only their own rows;
-- for that the vectors carry their scope (no join to messages per row) and each scope its
-- vector count, which tells the search which way is cheaper (store/search.py).
ALTER TABLE message_embeddings ADD COLUMN session_id text, ADD COLUMN peer_id text;
UPDATE message_embeddings e SET session_id = m.session_id, peer_id = m.peer_id
FROM messages m WHERE m.workspace_id = e.workspace_id AND m.message_id = e.message_id;
ALTER TABLE message_embeddings ALTER COLUMN session_id SET NOT NULL,
                               ALTER COLUMN peer_id SET NOT NULL;
CREATE INDEX message_embeddings_session ON message_embeddings (workspace_id, session_id);
CREATE INDEX message_embeddings_peer ON message_embeddings (workspace_id, peer_id);

-- Messages counted in the corpus statistics (those out of the embedding backlog) per session
-- and per peer, maintained with search_stats (store/search_stats.py).
CREATE TABLE scope_stats (
    workspace_id text NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('session', 'peer')),
    scope_id     text NOT NULL,
    docs         bigint NOT NULL,
    PRIMARY KEY (workspace_id, kind, scope_id)
);
INSERT INTO scope_stats (workspace_id, kind, scope_id, docs)
SELECT workspace_id, 'session', session_id, count(*) FROM message_embeddings GROUP BY 1, 3
UNION ALL
SELECT workspace_id, 'peer', peer_id, count(*) FROM message_embeddings GROUP BY 1, 3;
