-- Secrets every server process of a deployment shares, generated once by the database:
-- the key that signs page tokens (so a token from one server works on another, and none can
-- be forged or altered by a caller). gen_random_uuid() draws from a strong random source.
CREATE TABLE server_secrets (
    name text PRIMARY KEY,
    secret bytea NOT NULL
);
INSERT INTO server_secrets (name, secret)
VALUES ('page_token', uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()));
