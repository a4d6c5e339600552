-- Native clients' sign-ins in the system browser (RFC 8252): the flow (by the hash of
-- its id), where its one-time code goes, the verifier's challenge, and once a signed-in
-- user allowed it, the hash of the code and whose it is.
CREATE TABLE client_logins (
    flow_hash TEXT PRIMARY KEY,
    client_name TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    code_hash TEXT,
    user_id TEXT,
    code_expires_at BIGINT,
    spent BIGINT NOT NULL
);
CREATE UNIQUE INDEX client_logins_code ON client_logins (code_hash);
CREATE INDEX client_logins_expiry ON client_logins (expires_at);
