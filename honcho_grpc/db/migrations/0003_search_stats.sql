-- Corpus statistics for BM25 scoring of the full-text arm of search: how many messages of a
-- workspace contain each lexeme, and the workspace's message count and total length.
-- Maintained asynchronously by the embedding backlog (never on the CreateMessages path), so
-- they may lag a batch behind; deletes decrement them.
CREATE TABLE lexeme_stats (
    workspace_id text NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    lexeme       text NOT NULL,
    ndoc         integer NOT NULL,
    PRIMARY KEY (workspace_id, lexeme)
);

CREATE TABLE search_stats (
    workspace_id text PRIMARY KEY REFERENCES workspaces ON DELETE CASCADE,
    docs         bigint NOT NULL,
    total_length bigint NOT NULL
);
