-- Identity, credentials, gateways and networks. Portable between SQLite and
-- PostgreSQL: text, BIGINT (booleans as 0/1, times as Unix seconds).
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT,
    is_admin BIGINT NOT NULL DEFAULT 0,
    disabled BIGINT NOT NULL DEFAULT 0,
    provider TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_login_at BIGINT
);

CREATE TABLE user_groups (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    PRIMARY KEY (user_id, group_name)
);
CREATE INDEX user_groups_by_group ON user_groups (group_name);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    selector TEXT NOT NULL UNIQUE,
    verifier TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    selector TEXT NOT NULL UNIQUE,
    verifier TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    revoked_at BIGINT,
    UNIQUE (user_id, name)
);

CREATE TABLE gateways (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    hostname TEXT NOT NULL,
    port BIGINT NOT NULL,
    protocol TEXT NOT NULL,
    vpn_subnet TEXT NOT NULL,
    is_active BIGINT NOT NULL,
    token_selector TEXT NOT NULL UNIQUE,
    token_verifier TEXT NOT NULL,
    last_heartbeat BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE gateway_users (
    gateway_id TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (gateway_id, user_id)
);
CREATE INDEX gateway_users_by_user ON gateway_users (user_id);

CREATE TABLE gateway_groups (
    gateway_id TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    PRIMARY KEY (gateway_id, group_name)
);
CREATE INDEX gateway_groups_by_group ON gateway_groups (group_name);

CREATE TABLE networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    cidrs TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE gateway_networks (
    gateway_id TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
    PRIMARY KEY (gateway_id, network_id)
);
CREATE INDEX gateway_networks_by_network ON gateway_networks (network_id);
