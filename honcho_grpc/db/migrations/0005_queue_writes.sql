-- Enqueueing is on the path of every message write (one representation job per message), and
-- per-row foreign-key checks made it the largest cost after the message INSERT itself: 64 ms
-- of ~230 ms per 1,000 imported messages, 36 ms without them (measured step by step).
-- Deleting a workspace or a session now removes its queue rows explicitly, in the same
-- transaction, after the row lock that serialises it with writers (store/resources.py);
-- writers create the workspace and session before enqueueing, in their own transaction.
ALTER TABLE queue DROP CONSTRAINT IF EXISTS queue_workspace_id_fkey;
ALTER TABLE queue DROP CONSTRAINT IF EXISTS queue_workspace_id_session_id_fkey;
-- Superseded by queue_unit (0002), which leads with workspace_id; nothing reads it.
DROP INDEX IF EXISTS queue_open;
