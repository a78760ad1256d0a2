-- messages.created is now sent by the domain (honcho_grpc/domain/messages.py announce_created)
-- through store/events.emit like every other event, in the same transaction as the write, with
-- the same payload; the trigger of migration 0002 goes.
DROP TRIGGER IF EXISTS messages_created_event ON messages;
DROP FUNCTION IF EXISTS honcho_messages_created();
