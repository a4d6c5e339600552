-- The fleet outbox: what agents must be told, read by every core node's relay in id
-- order (ids are taken under an advisory lock on PostgreSQL, so they commit in order).
CREATE TABLE fleet_events (
    id BIGINT PRIMARY KEY,
    node_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX fleet_events_created ON fleet_events (created_at);

-- The core nodes sharing this database, each with a heartbeat.
CREATE TABLE core_nodes (
    id TEXT PRIMARY KEY,
    grpc_address TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    gateways_held BIGINT NOT NULL DEFAULT 0
);

-- Rate limits kept for all nodes together (GCRA: each bucket's theoretical arrival
-- time, in Unix milliseconds).
CREATE TABLE rate_limit_buckets (
    bucket TEXT PRIMARY KEY,
    tat_ms BIGINT NOT NULL
);

-- The core node holding each gateway's agent stream.
ALTER TABLE gateways ADD COLUMN stream_node TEXT;
