-- Access rules, VPN sessions reported by gateway agents, and per-gateway rule versions.
CREATE TABLE access_rules (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
    destination_type TEXT NOT NULL,
    destination TEXT NOT NULL,
    protocol TEXT NOT NULL,
    port_from BIGINT NOT NULL,
    port_to BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX access_rules_by_network ON access_rules (network_id);

CREATE TABLE access_rule_users (
    rule_id TEXT NOT NULL REFERENCES access_rules(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (rule_id, user_id)
);

CREATE TABLE access_rule_groups (
    rule_id TEXT NOT NULL REFERENCES access_rules(id) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    PRIMARY KEY (rule_id, group_name)
);

CREATE TABLE vpn_sessions (
    gateway_id TEXT NOT NULL,
    session_key TEXT NOT NULL,
    common_name TEXT NOT NULL,
    serial TEXT NOT NULL,
    vpn_address TEXT NOT NULL,
    client_address TEXT NOT NULL,
    connected_at BIGINT NOT NULL,
    disconnected_at BIGINT,
    bytes_received BIGINT,
    bytes_sent BIGINT,
    PRIMARY KEY (gateway_id, session_key)
);
CREATE INDEX vpn_sessions_open ON vpn_sessions (gateway_id, disconnected_at);
CREATE INDEX vpn_sessions_by_serial ON vpn_sessions (serial);
CREATE INDEX vpn_sessions_by_common_name ON vpn_sessions (common_name);

ALTER TABLE gateways ADD COLUMN rules_version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE gateways ADD COLUMN rules_applied_version BIGINT NOT NULL DEFAULT 0;
