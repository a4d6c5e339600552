-- Mesh: a hub is a gateway row in the `hub` role (same token, stream, grants,
-- networks, sessions and rule versions). Spokes are remote sites connected to a hub.
ALTER TABLE gateways ADD COLUMN role TEXT NOT NULL DEFAULT 'gateway';

CREATE TABLE mesh_spokes (
    id TEXT PRIMARY KEY,
    hub_id TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    local_cidrs TEXT NOT NULL,
    advertised_cidrs TEXT NOT NULL,
    certificate_serial TEXT,
    token_selector TEXT NOT NULL UNIQUE,
    token_verifier TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (hub_id, name)
);
