-- The embedded CA, the ledger of issued certificates, rendered configs (sealed),
-- signed CRLs, and each gateway's sealed tls-crypt key.
CREATE TABLE certificate_authority (
    id BIGINT PRIMARY KEY,
    common_name TEXT NOT NULL,
    certificate_pem TEXT NOT NULL,
    sealed_private_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE certificates (
    serial TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT,
    gateway_id TEXT,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revocation_reason TEXT
);
CREATE INDEX certificates_revoked ON certificates (revoked_at);

CREATE TABLE vpn_configs (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    gateway_id TEXT NOT NULL,
    gateway_name TEXT NOT NULL,
    serial TEXT NOT NULL REFERENCES certificates(serial),
    protocol TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    sealed_content TEXT,
    purge_after BIGINT NOT NULL,
    downloaded_at BIGINT
);
CREATE INDEX vpn_configs_by_user ON vpn_configs (user_id, created_at);
CREATE INDEX vpn_configs_by_serial ON vpn_configs (serial);

CREATE TABLE crls (
    number BIGINT PRIMARY KEY,
    der_base64 TEXT NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL
);

ALTER TABLE gateways ADD COLUMN sealed_tls_crypt_key TEXT;
