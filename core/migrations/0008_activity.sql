-- What the console's dashboard and lists read: configs by age, open sessions by age,
-- and sign-in attempts by outcome.
CREATE INDEX vpn_configs_created ON vpn_configs (created_at);
CREATE INDEX vpn_sessions_open_since ON vpn_sessions (disconnected_at, connected_at);
CREATE INDEX login_events_outcome ON login_events (success, at);
