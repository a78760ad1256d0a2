-- Opening a batch of new messages in one round trip instead of seven. Every message write
-- (CreateMessages, an import chunk, a file upload) first makes sure the workspace, session
-- and authors exist, makes the authors members, takes the batch's sequence numbers and reads
-- what decides its background work (both configurations, who observes whom). As separate
-- statements these were seven of the write's thirteen statements.
--
-- The order is that of the statements it replaces: parents first, memberships, then the
-- session row's lock (UPDATE ... last_seq), held until commit so that concurrent writers to
-- one session queue up and numbers stay gap-free (a rollback returns them). p_authors comes
-- sorted and distinct (store/messages.py): rows locked in one order, none upserted twice.
CREATE FUNCTION honcho_open_message_batch(p_workspace text, p_session text, p_authors text[],
                                          p_count integer)
RETURNS TABLE (first_seq bigint, session_configuration jsonb, workspace_configuration jsonb,
               member_ids text[], member_active boolean[], member_observe_me boolean[],
               member_observe_others boolean[], written_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO workspaces (workspace_id) VALUES (p_workspace) ON CONFLICT DO NOTHING;
    INSERT INTO sessions (workspace_id, session_id) VALUES (p_workspace, p_session)
        ON CONFLICT DO NOTHING;
    INSERT INTO peers (workspace_id, peer_id)
        SELECT p_workspace, unnest(p_authors) ON CONFLICT DO NOTHING;
    -- Authors become members again if they had left.
    INSERT INTO session_peers AS sp (workspace_id, session_id, peer_id)
        SELECT p_workspace, p_session, unnest(p_authors)
        ON CONFLICT (workspace_id, session_id, peer_id) DO UPDATE
            SET left_at = NULL, joined_at = now() WHERE sp.left_at IS NOT NULL;
    UPDATE sessions s SET last_seq = s.last_seq + p_count
        WHERE s.workspace_id = p_workspace AND s.session_id = p_session
        RETURNING s.last_seq - p_count + 1, s.configuration
        INTO first_seq, session_configuration;
    SELECT w.configuration INTO workspace_configuration
        FROM workspaces w WHERE w.workspace_id = p_workspace;
    -- Every member, active or not, with the settings that decide who observes whom.
    SELECT coalesce(array_agg(sp.peer_id), '{}'), coalesce(array_agg(sp.left_at IS NULL), '{}'),
           coalesce(array_agg(coalesce(sp.observe_me, (p.configuration->>'observe_me')::boolean,
                                       true)), '{}'),
           coalesce(array_agg(coalesce(sp.observe_others, false)), '{}')
        INTO member_ids, member_active, member_observe_me, member_observe_others
        FROM session_peers sp JOIN peers p USING (workspace_id, peer_id)
        WHERE sp.workspace_id = p_workspace AND sp.session_id = p_session;
    written_at := now();
    RETURN NEXT;
END
$$;
