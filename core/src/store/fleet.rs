//! The fleet outbox: what agents must be told (rules changed, sessions to kill, a new
//! CRL, streams to end), one row per event with a rising id, read by every core node's
//! relay. On PostgreSQL each append takes a transaction-scoped advisory lock, so ids
//! commit in the order they were taken (a reader never sees 7 before 6 commits), and
//! wakes the other nodes with `NOTIFY`, which PostgreSQL delivers only at commit.
//! Nodes record themselves in `core_nodes` with a heartbeat.

use super::{Store, WriteTx, unix_now};
use crate::error::{CoreError, CoreResult};
use sqlx::Row;
use sqlx::postgres::{PgListener, PgPoolOptions};

/// The channel nodes `LISTEN` on.
pub const FLEET_CHANNEL: &str = "gatekey_fleet";
/// How long a relay waits for its listening connection before it polls instead.
const LISTENER_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// The advisory lock that orders outbox appends.
const OUTBOX_LOCK: i64 = 7_406_191;
/// The advisory lock that runs changes to who may reach what one at a time.
const POLICY_LOCK: i64 = 7_406_192;

/// An event ready for the outbox: who made it and what it says (JSON).
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// The node that made it.
    pub node_id: String,
    /// The event, as JSON.
    pub payload: String,
}

/// One event as stored.
#[derive(Debug, Clone)]
pub struct FleetEventRecord {
    /// Its place in the outbox.
    pub id: i64,
    /// The node that made it.
    pub node_id: String,
    /// The event, as JSON.
    pub payload: String,
}

/// A core node as it reports itself.
#[derive(Debug, Clone)]
pub struct NodeRecord {
    /// The node's id (new at each start).
    pub id: String,
    /// The gRPC address it listens on.
    pub grpc_address: String,
    /// When it started (Unix seconds).
    pub started_at: i64,
    /// Its last heartbeat (Unix seconds).
    pub last_seen_at: i64,
    /// How many gateway streams it held at its last heartbeat.
    pub gateways_held: i64,
}

impl Store {
    /// Inside `tx`, waits for and takes the policy lock (PostgreSQL; SQLite's writer is
    /// alone anyway), held until `tx` ends. A change to grants, groups, access rules or
    /// networks takes it before it reads which gateways its change concerns: a change
    /// committing meanwhile on another connection could otherwise hide from it the link
    /// that makes a gateway concerned, and that gateway would keep its rule version (and
    /// so its pushed snapshot and the inputs its verdicts keep) from before.
    pub async fn lock_policies(&self, tx: &mut WriteTx) -> CoreResult<()> {
        if self.backend == "postgres" {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(POLICY_LOCK).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Inside `tx`, waits for and takes the outbox lock (PostgreSQL; SQLite's writer is
    /// alone anyway), held until `tx` ends: events get ids in commit order.
    pub(super) async fn lock_outbox(&self, tx: &mut WriteTx) -> CoreResult<()> {
        if self.backend == "postgres" {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(OUTBOX_LOCK).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Inside `tx`: the rule versions of these gateways go up (their agents will be sent
    /// fresh snapshots). Rows are locked in id order, as every batch of gateway updates
    /// locks them, so two such transactions never wait for each other in a circle.
    pub async fn bump_rule_versions(&self, tx: &mut WriteTx, gateway_ids: &[String]) -> CoreResult<()> {
        let postgres = self.backend == "postgres";
        let mut gateway_ids = gateway_ids.to_vec();
        gateway_ids.sort();
        gateway_ids.dedup();
        for chunk in gateway_ids.chunks(500) {
            let placeholders = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            // PostgreSQL: lock the rows in id order first (a plain multi-row UPDATE
            // locks them in whatever order its plan visits them).
            let rows = match postgres {
                true => format!("SELECT id FROM gateways WHERE id IN ({placeholders}) ORDER BY id FOR UPDATE"),
                false => placeholders,
            };
            let mut bump = query_fmt!("UPDATE gateways SET rules_version = rules_version + 1 WHERE id IN ({rows})");
            for id in chunk {
                bump = bump.bind(id);
            }
            bump.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Appends an event inside `tx`, the transaction of the change it follows (so it
    /// exists exactly when the change commits); answers its id.
    pub async fn append_fleet_event(&self, tx: &mut WriteTx, entry: &OutboxEntry) -> CoreResult<i64> {
        let postgres = self.backend == "postgres";
        self.lock_outbox(tx).await?;
        let row = sqlx::query(
            "INSERT INTO fleet_events (id, node_id, payload, created_at) \
             SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3 FROM fleet_events RETURNING id",
        )
        .bind(&entry.node_id)
        .bind(&entry.payload)
        .bind(unix_now())
        .fetch_one(&mut **tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        if postgres {
            sqlx::query("SELECT pg_notify($1, $2)").bind(FLEET_CHANNEL).bind(id.to_string()).execute(&mut **tx).await?;
        }
        Ok(id)
    }

    /// The gateways these networks are attached to, as `tx` sees them, sorted.
    pub async fn gateways_of_networks(&self, tx: &mut WriteTx, network_ids: &[&str]) -> CoreResult<Vec<String>> {
        let mut gateways = std::collections::BTreeSet::new();
        for network_id in network_ids {
            let rows = sqlx::query("SELECT gateway_id FROM gateway_networks WHERE network_id = $1")
                .bind(network_id)
                .fetch_all(&mut **tx)
                .await?;
            for row in rows {
                gateways.insert(row.try_get::<String, _>("gateway_id")?);
            }
        }
        Ok(gateways.into_iter().collect())
    }

    /// The newest event's id (0 when there is none).
    pub async fn latest_fleet_event_id(&self) -> CoreResult<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS latest FROM fleet_events").fetch_one(&self.pool).await?;
        Ok(row.try_get("latest")?)
    }

    /// Up to `limit` events after `after`, oldest first, read over the relay's own
    /// `listener` connection when it has one (so a pool busy with the node's other work
    /// never holds the relay up; notifications arriving meanwhile stay buffered in it),
    /// from the pool otherwise.
    pub async fn fleet_events_after(
        &self,
        listener: Option<&mut PgListener>,
        after: i64,
        limit: u32,
    ) -> CoreResult<Vec<FleetEventRecord>> {
        const READ: &str = "SELECT id, node_id, payload FROM fleet_events WHERE id > $1 ORDER BY id LIMIT $2";
        let rows: Vec<(i64, String, String)> = match listener {
            Some(listener) => sqlx::query_as(READ).bind(after).bind(i64::from(limit)).fetch_all(listener).await?,
            None => sqlx::query_as(READ).bind(after).bind(i64::from(limit)).fetch_all(&self.pool).await?,
        };
        Ok(rows.into_iter().map(|(id, node_id, payload)| FleetEventRecord { id, node_id, payload }).collect())
    }

    /// Drops events older than `older_than` (Unix seconds), keeping the newest one so
    /// that ids keep rising; answers how many went.
    pub async fn prune_fleet_events(&self, older_than: i64) -> CoreResult<u64> {
        let done =
            sqlx::query("DELETE FROM fleet_events WHERE created_at < $1 AND id < (SELECT MAX(id) FROM fleet_events)")
                .bind(older_than)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// A connection listening on [`FLEET_CHANNEL`], named `gatekey-relay <node_id>` in
    /// `pg_stat_activity`; `None` on SQLite (a single node has no one to hear).
    pub async fn fleet_listener(&self, node_id: &str) -> CoreResult<Option<PgListener>> {
        let Some(url) = &self.postgres_url else { return Ok(None) };
        let options: sqlx::postgres::PgConnectOptions =
            url.0.parse().map_err(|e| CoreError::Internal(format!("the database URL: {e}")))?;
        // A refused connection fails fast (sqlx would retry one PostgreSQL calls
        // transient, such as too many connections, for 30 s), so the relay polls instead.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(LISTENER_CONNECT_TIMEOUT)
            .connect_with(options.application_name(&format!("gatekey-relay {node_id}")))
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        // A lost connection is the relay's to handle (it polls while it cannot listen),
        // not retried inside the wait for a notification.
        listener.eager_reconnect(false);
        listener.listen(FLEET_CHANNEL).await?;
        Ok(Some(listener))
    }

    /// Records (or refreshes) this node's heartbeat row.
    pub async fn record_node_heartbeat(&self, node: &NodeRecord) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO core_nodes (id, grpc_address, started_at, last_seen_at, gateways_held) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET last_seen_at = $4, gateways_held = $5",
        )
        .bind(&node.id)
        .bind(&node.grpc_address)
        .bind(node.started_at)
        .bind(node.last_seen_at)
        .bind(node.gateways_held)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that node `node_id` holds (`held`) or let go of a gateway's stream; letting
    /// go changes nothing when another node took the stream meanwhile.
    pub async fn record_stream_holder(
        &self,
        tx: &mut WriteTx,
        gateway_id: &str,
        node_id: &str,
        held: bool,
    ) -> CoreResult<()> {
        let statement = if held {
            "UPDATE gateways SET stream_node = $1 WHERE id = $2"
        } else {
            "UPDATE gateways SET stream_node = NULL WHERE stream_node = $1 AND id = $2"
        };
        sqlx::query(statement).bind(node_id).bind(gateway_id).execute(&mut **tx).await?;
        Ok(())
    }

    /// Drops the rows of nodes not seen since `since` (they died without saying so).
    pub async fn prune_nodes(&self, since: i64) -> CoreResult<u64> {
        let done =
            sqlx::query("DELETE FROM core_nodes WHERE last_seen_at < $1").bind(since).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    /// Removes the row of a node that stops.
    pub async fn remove_node(&self, node_id: &str) -> CoreResult<()> {
        sqlx::query("DELETE FROM core_nodes WHERE id = $1").bind(node_id).execute(&self.pool).await?;
        Ok(())
    }

    /// The nodes seen since `since` (Unix seconds), oldest first.
    pub async fn live_nodes(&self, since: i64) -> CoreResult<Vec<NodeRecord>> {
        let rows = sqlx::query(
            "SELECT id, grpc_address, started_at, last_seen_at, gateways_held FROM core_nodes \
             WHERE last_seen_at >= $1 ORDER BY started_at, id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(NodeRecord {
                    id: row.try_get("id")?,
                    grpc_address: row.try_get("grpc_address")?,
                    started_at: row.try_get("started_at")?,
                    last_seen_at: row.try_get("last_seen_at")?,
                    gateways_held: row.try_get("gateways_held")?,
                })
            })
            .collect()
    }
}

impl Store {
    /// Takes one request's allowance from the cluster-wide bucket `key` (GCRA:
    /// `per_minute` a minute, a burst of as many): `None` when allowed, else the
    /// milliseconds until the next request would be. One atomic upsert, timed by the
    /// database's clock (so nodes whose clocks differ agree); PostgreSQL only.
    pub async fn take_shared_allowance(&self, key: &str, per_minute: u32) -> CoreResult<Option<i64>> {
        const WINDOW_MS: i64 = 60_000;
        let interval_ms = WINDOW_MS / i64::from(per_minute.max(1));
        let now_ms: i64 = sqlx::query("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS now_ms")
            .fetch_one(&self.pool)
            .await?
            .try_get("now_ms")?;
        let taken = sqlx::query(
            "INSERT INTO rate_limit_buckets (bucket, tat_ms) VALUES ($1, $2 + $3) \
             ON CONFLICT (bucket) DO UPDATE SET tat_ms = GREATEST(rate_limit_buckets.tat_ms, $2) + $3 \
             WHERE GREATEST(rate_limit_buckets.tat_ms, $2) + $3 - $2 <= $4 RETURNING tat_ms",
        )
        .bind(key)
        .bind(now_ms)
        .bind(interval_ms)
        .bind(WINDOW_MS)
        .fetch_optional(&self.pool)
        .await?;
        if taken.is_some() {
            return Ok(None);
        }
        let row = sqlx::query("SELECT tat_ms FROM rate_limit_buckets WHERE bucket = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        let tat_ms: i64 = row.try_get("tat_ms")?;
        Ok(Some(tat_ms.max(now_ms) + interval_ms - now_ms - WINDOW_MS))
    }

    /// Drops the buckets whose allowance is whole again (by the database's clock on
    /// PostgreSQL, the only backend that keeps them).
    pub async fn prune_shared_allowances(&self) -> CoreResult<u64> {
        if self.backend != "postgres" {
            return Ok(0);
        }
        let done = sqlx::query(
            "DELETE FROM rate_limit_buckets WHERE tat_ms < CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
