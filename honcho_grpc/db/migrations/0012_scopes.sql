-- Scopes: named sets of a workspace's sessions, used as a visibility boundary. A read made
-- through a scope (chat, representation, context, search) sees only the messages of its
-- member sessions and the explicit conclusions drawn in them. Membership is a row here; the
-- boundary is applied when reading (nothing is copied), so adding or removing a session takes
-- effect at once. A session's deletion removes its memberships, a scope's its own.
CREATE TABLE scopes (
    workspace_id text NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    scope_id     text NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, scope_id)
);
CREATE INDEX scopes_created ON scopes (workspace_id, created_at, scope_id);

CREATE TABLE scope_sessions (
    workspace_id text NOT NULL,
    scope_id     text NOT NULL,
    session_id   text NOT NULL,
    added_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (workspace_id, scope_id, session_id),
    FOREIGN KEY (workspace_id, scope_id) REFERENCES scopes ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, session_id) REFERENCES sessions ON DELETE CASCADE
);
-- Members in the order they joined (the list's order), and a session's scopes (its delete).
CREATE INDEX scope_sessions_added ON scope_sessions (workspace_id, scope_id, added_at, session_id);
CREATE INDEX scope_sessions_session ON scope_sessions (workspace_id, session_id);
