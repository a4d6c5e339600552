//! One operation's unit of work: the write transaction that every store function of the
//! operation runs in, and the fleet events it records. The events go into the outbox
//! inside the transaction, just before it commits (after every row lock the operation
//! takes, so the outbox lock always comes last), so they exist exactly when the change
//! commits; once the commit is done, this node's own streams get them in the order they
//! were recorded (the other nodes' relays read them from the outbox). Dropped without a
//! commit, the work rolls back and no one is told anything.

use crate::context::CoreContext;
use crate::error::{CoreError, CoreResult};
use crate::fleet::FleetEvent;
use crate::pki::lifecycle::{CurrentCrl, sign_crl};
use crate::store::{OpenSession, WriteTx};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatekey::v1::{Event, event};
use prost::Message;

/// A write transaction and the fleet events recorded in it.
pub struct UnitOfWork<'a> {
    context: &'a CoreContext,
    /// The transaction; store functions take it as their executor.
    pub tx: WriteTx,
    recorded: Vec<FleetEvent>,
}

impl<'a> UnitOfWork<'a> {
    /// Opens the write transaction of an operation.
    pub async fn begin(context: &'a CoreContext) -> CoreResult<UnitOfWork<'a>> {
        Ok(UnitOfWork { context, tx: context.store.begin_write().await?, recorded: Vec::new() })
    }

    /// Opens the write transaction of an operation that changes who may reach what
    /// (grants, groups, access rules, networks): such operations run one at a time
    /// across the nodes, each seeing the others' committed links when it works out which
    /// gateways its change concerns (see [`crate::store::Store::lock_policies`]).
    pub async fn begin_policy_change(context: &'a CoreContext) -> CoreResult<UnitOfWork<'a>> {
        let mut work = UnitOfWork::begin(context).await?;
        context.store.lock_policies(&mut work.tx).await?;
        Ok(work)
    }

    /// Records `event`, which changes no rule version.
    pub async fn record(&mut self, event: FleetEvent) -> CoreResult<()> {
        self.write(event, &[]).await
    }

    /// Records that these gateways' rules changed: their rule versions go up and their
    /// pushers will send fresh snapshots. Nothing when there are none.
    pub async fn rules_changed(&mut self, gateway_ids: &[String]) -> CoreResult<()> {
        match gateway_ids.is_empty() {
            true => Ok(()),
            false => self.write(FleetEvent::RulesChanged { gateway_ids: gateway_ids.to_vec() }, gateway_ids).await,
        }
    }

    /// Records the order ending `sessions` at their gateways for `reason`; nothing when
    /// there are none.
    pub async fn kill(&mut self, sessions: &[OpenSession], reason: &str) -> CoreResult<()> {
        match FleetEvent::kill(sessions, reason) {
            Some(event) => self.record(event).await,
            None => Ok(()),
        }
    }

    /// Records an event that happened now for the admins watching the fleet, on every node.
    pub async fn watched(&mut self, kind: event::Kind) -> CoreResult<()> {
        let at = crate::convert::timestamp(crate::store::unix_now());
        let encoded = STANDARD.encode(Event { at: Some(at), kind: Some(kind) }.encode_to_vec());
        self.record(FleetEvent::Watched { event: encoded }).await
    }

    /// Signs and stores the next CRL, listing every revocation this transaction sees,
    /// and records the event handing it to every agent.
    pub async fn sign_next_crl(&mut self) -> CoreResult<CurrentCrl> {
        let store = &self.context.store;
        let (number, revoked) = store.next_crl_contents(&mut self.tx).await?;
        let record = sign_crl(&self.context.authority, number, &revoked)?;
        store.insert_crl(&mut self.tx, &record).await?;
        let crl = CurrentCrl::from_record(&record)?;
        self.record(FleetEvent::Crl { pem: crl.signed.pem.clone(), number: crl.number }).await?;
        Ok(crl)
    }

    /// Writes the recorded events to the outbox and commits, then hands the events to
    /// this node's streams. The commit and the handing over run in a task of their own:
    /// a caller that gives up meanwhile (a client hanging up) cannot leave a committed
    /// change untold here (the relay skips this node's own events).
    pub async fn commit(mut self) -> CoreResult<()> {
        for event in &self.recorded {
            // Stamped now, close to the commit, for the relay's delay metric.
            let entry = self.context.fleet.outbox_entry(event)?;
            self.context.store.append_fleet_event(&mut self.tx, &entry).await?;
        }
        let (tx, recorded) = (self.tx, self.recorded);
        let (hub, watchers) = (self.context.hub.clone(), self.context.events.clone());
        let committing = tokio::spawn(async move {
            tx.commit().await?;
            for event in &recorded {
                crate::fleet::apply(&hub, &watchers, event);
            }
            Ok::<_, CoreError>(())
        });
        committing.await.map_err(|error| CoreError::Internal(format!("the commit's task failed: {error}")))?
    }

    /// Records `event`, for the outbox at the commit, after bumping the rule versions of
    /// `gateways_to_bump` now.
    async fn write(&mut self, event: FleetEvent, gateways_to_bump: &[String]) -> CoreResult<()> {
        if !gateways_to_bump.is_empty() {
            self.context.store.bump_rule_versions(&mut self.tx, gateways_to_bump).await?;
        }
        self.recorded.push(event);
        Ok(())
    }
}

impl std::fmt::Debug for UnitOfWork<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitOfWork").field("recorded", &self.recorded).finish_non_exhaustive()
    }
}
