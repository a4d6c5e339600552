-- Geo-fencing: one settings row and the allow/deny rules.
CREATE TABLE geo_fence_settings (
    id BIGINT PRIMARY KEY,
    enabled BIGINT NOT NULL,
    mode TEXT NOT NULL,
    database_path TEXT NOT NULL,
    unknown_location_policy TEXT NOT NULL
);

CREATE TABLE geo_fence_rules (
    id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    countries TEXT NOT NULL,
    cidrs TEXT NOT NULL,
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
