-- Single sign-on: identity providers, in-flight login flows, SAML replay guard, and
-- the record of every login attempt.
CREATE TABLE auth_providers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    issuer_url TEXT NOT NULL,
    client_id TEXT NOT NULL,
    sealed_client_secret TEXT,
    scopes TEXT NOT NULL,
    groups_claim TEXT NOT NULL,
    admin_group TEXT NOT NULL,
    allowed_groups TEXT NOT NULL,
    saml_idp_metadata TEXT NOT NULL,
    saml_entity_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE login_flows (
    state_hash TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL,
    sealed_secrets TEXT NOT NULL,
    redirect_to TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE saml_seen_assertions (
    assertion_id TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE TABLE login_events (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    client_address TEXT NOT NULL,
    success BIGINT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX login_events_at ON login_events (at);
