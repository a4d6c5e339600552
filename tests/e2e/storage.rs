//! The store itself, run identically against SQLite and PostgreSQL.

use crate::kit::{TempDir, backends, fresh_database_url};
use gatekey_core::error::CoreError;
use gatekey_core::ids::{IdKind, new_id};
use gatekey_core::secrets::mint_token;
use gatekey_core::store::{
    ApiKeyRecord, AuthProviderFields, AuthProviderRecord, CertificateRecord, CrlRecord, GatewayChanges, GatewayLink,
    GatewayRecord, GatewayRole, LoginEvent, NetworkChanges, NetworkRecord, NewApiKey, NewGateway, NewNetwork, NewUser,
    OutboxEntry, Page, SessionsOf, Store, UserChanges, UserRecord, WriteTx,
};

/// Runs one store write in a transaction of its own (`tx` names it in the call), and
/// commits it when the write succeeded; answers the write's result.
macro_rules! write {
    ($store:expr, |$tx:ident| $call:expr) => {{
        let mut transaction = $store.begin_write().await.unwrap();
        let result = {
            let $tx = &mut transaction;
            $call.await
        };
        if result.is_ok() {
            transaction.commit().await.unwrap();
        }
        result
    }};
}

/// Creates `user` in a transaction of its own; answers it as stored.
async fn add_user(store: &Store, user: NewUser) -> Result<UserRecord, CoreError> {
    let id = user.id.clone();
    write!(store, |tx| store.create_user(tx, user))?;
    store.require_user(&id).await
}

/// Creates `network` in a transaction of its own; answers it as stored.
async fn add_network(store: &Store, network: NewNetwork) -> Result<NetworkRecord, CoreError> {
    let id = network.id.clone();
    write!(store, |tx| store.create_network(tx, network))?;
    store.require_network(&id).await
}

/// Creates `key` in a transaction of its own; answers it as stored.
async fn add_api_key(store: &Store, key: NewApiKey<'_>) -> Result<ApiKeyRecord, CoreError> {
    let id = key.id;
    write!(store, |tx| store.create_api_key(tx, key))?;
    Ok(store.find_api_key(id).await?.expect("the key just stored"))
}

/// Revokes `user_id`'s key `id` in a transaction of its own; answers it as stored.
async fn revoke_key(store: &Store, user_id: &str, id: &str) -> Result<ApiKeyRecord, CoreError> {
    write!(store, |tx| store.revoke_api_key(tx, user_id, id))?;
    Ok(store.find_api_key(id).await?.expect("the key just revoked"))
}

/// Creates the identity provider `id` in a transaction of its own; answers it as stored.
async fn add_provider(store: &Store, id: &str, fields: &AuthProviderFields) -> Result<AuthProviderRecord, CoreError> {
    write!(store, |tx| store.create_auth_provider(tx, id, fields))?;
    store.require_auth_provider(id).await
}

fn user(name: &str, groups: &[&str]) -> NewUser {
    NewUser {
        id: new_id(IdKind::User),
        username: name.into(),
        email: format!("{name}@example.com"),
        name: name.into(),
        password_hash: Some("$argon2id$placeholder".into()),
        is_admin: false,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        provider: "local".into(),
        email_verified_by: None,
    }
}

fn gateway(name: &str) -> NewGateway {
    NewGateway {
        id: new_id(IdKind::Gateway),
        role: GatewayRole::Gateway,
        name: name.into(),
        description: String::new(),
        hostname: format!("{name}.example.com"),
        port: 1194,
        protocol: gatekey_core::domain::Transport::Udp,
        vpn_subnet: "10.8.0.0/24".into(),
    }
}

const PAGE: Page = Page { number: 1, size: 100 };

/// An event for the outbox, as a node would write it.
fn pushed() -> OutboxEntry {
    OutboxEntry { node_id: "node-test".into(), payload: "{}".into() }
}

/// Creates the gateway `name` (with a new agent token) and reads it back.
async fn create_gateway(store: &Store, name: &str) -> Result<GatewayRecord, CoreError> {
    let gateway = gateway(name);
    write!(store, |tx| store.create_gateway(tx, &gateway, &mint_token("gkgw_"), &[]))?;
    store.require_gateway(&gateway.id).await
}

/// Links a gateway to a user, group or network, and reads it back.
async fn link(store: &Store, gateway_id: &str, link: GatewayLink, target: &str) -> GatewayRecord {
    write!(store, |tx| store.link_gateway(tx, gateway_id, link, target)).unwrap();
    store.require_gateway(gateway_id).await.unwrap()
}

/// The network `lan`, 10.9.0.0/24.
fn lan() -> NewNetwork {
    NewNetwork {
        id: new_id(IdKind::Network),
        name: "lan".into(),
        description: String::new(),
        cidrs: vec!["10.9.0.0/24".into()],
    }
}

/// The rule `web`: group `eng` may reach 10.9.0.5 on TCP 443 in network `network_id`.
fn web_rule(network_id: &str) -> gatekey_core::store::AccessRuleFields {
    gatekey_core::store::AccessRuleFields {
        name: "web".into(),
        description: String::new(),
        network_id: network_id.into(),
        user_ids: vec![],
        groups: vec!["eng".into()],
        destination_type: gatekey_core::domain::DestinationType::Ip,
        destination: "10.9.0.5".into(),
        protocol: gatekey_core::domain::RuleProtocol::Tcp,
        port_from: 443,
        port_to: 443,
    }
}

/// Session `s-1` of certificate `serial` held by `common_name`.
fn session_report(common_name: &str, serial: &str) -> gatekey_core::store::SessionReport {
    gatekey_core::store::SessionReport {
        session_key: "s-1".into(),
        common_name: common_name.into(),
        serial: serial.into(),
        vpn_address: "10.8.0.2".into(),
        client_address: "192.0.2.1".into(),
        connected_at: 1,
    }
}

/// Runs `check` against a fresh store of every backend.
async fn on_every_backend<F, Fut>(check: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in backends() {
        let dir = TempDir::new("store");
        let store = Store::open(&fresh_database_url(backend, dir.path()).await).await.unwrap();
        check(store.clone()).await;
        // Migrations are idempotent on restart.
        store.migrate().await.unwrap();
        store.close().await;
    }
}

#[tokio::test]
async fn users_groups_and_uniqueness() {
    on_every_backend(|store| async move {
        let alice = add_user(&store, user("alice", &["eng", "ops"])).await.unwrap();
        assert_eq!(alice.groups, ["eng", "ops"]);
        assert!(!alice.is_admin && !alice.disabled);
        let duplicate = add_user(&store, user("alice", &[])).await.unwrap_err();
        assert!(matches!(duplicate, CoreError::Conflict(_)), "{duplicate:?}");
        assert_eq!(store.list_users(PAGE, "").await.unwrap().total, 1, "a failed insert leaves nothing behind");

        // A gateway granted to group `sec`: joining it changes that gateway's rules.
        let gw = create_gateway(&store, "sec-gw").await.unwrap();
        link(&store, &gw.id, GatewayLink::Group, "sec").await;
        let changes = UserChanges { groups: Some(vec!["sec".into()]), is_admin: Some(true), ..Default::default() };
        let update = write!(store, |tx| store.update_user(tx, &alice.id, changes)).unwrap();
        assert!(update.ends_vpn_sessions.is_none(), "nothing ends VPN sessions");
        assert_eq!(update.gateways_changed, std::slice::from_ref(&gw.id), "the gateway granted through the new group");
        let changed = store.require_user(&alice.id).await.unwrap();
        assert_eq!(changed.groups, ["sec"]);
        assert!(changed.is_admin);
        assert_eq!(changed.email, "alice@example.com");
        let (id, hash) = store.password_hash_for("alice").await.unwrap().unwrap();
        assert_eq!((id.as_str(), hash.as_deref()), (alice.id.as_str(), Some("$argon2id$placeholder")));
        assert!(matches!(
            write!(store, |tx| store.update_user(tx, "usr-none", UserChanges::default())),
            Err(CoreError::NotFound(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn sessions_and_api_keys() {
    on_every_backend(|store| async move {
        let alice = add_user(&store, user("alice", &[])).await.unwrap();
        let token = mint_token("gks_");
        write!(store, |tx| store.create_session(tx, &new_id(IdKind::Session), &alice.id, &token, i64::MAX / 2))
            .unwrap();
        let (session, holder) = store.find_session(&token.selector).await.unwrap().unwrap();
        assert_eq!(
            (session.verifier, session.user_id, holder.id),
            (token.verifier.clone(), alice.id.clone(), alice.id.clone())
        );

        // Disabling a user removes its sessions.
        let disabled = UserChanges { disabled: Some(true), ..Default::default() };
        let update = write!(store, |tx| store.update_user(tx, &alice.id, disabled)).unwrap();
        assert_eq!(update.ends_vpn_sessions, Some(gatekey_core::store::VpnSessionsEnd::Disabled));
        assert!(store.find_session(&token.selector).await.unwrap().is_none());

        let expired = mint_token("gks_");
        write!(store, |tx| store.create_session(tx, &new_id(IdKind::Session), &alice.id, &expired, 1)).unwrap();
        assert_eq!(store.purge_expired_sessions().await.unwrap(), 1);

        let key_token = mint_token("gk_");
        let scopes = vec!["read".to_owned()];
        let new_key = |id: &'static str| NewApiKey {
            id,
            user_id: &alice.id,
            name: "ci",
            scopes: &scopes,
            expires_at: None,
            token: &key_token,
        };
        let key = add_api_key(&store, new_key("key-1")).await.unwrap();
        assert_eq!(key.scopes, ["read"]);
        assert!(key.prefix.starts_with("gk_") && key.prefix.len() == 11);
        assert!(matches!(add_api_key(&store, new_key("key-2")).await, Err(CoreError::Conflict(_))), "same name");
        store.touch_api_key(&key).await.unwrap();
        let used = store.find_api_key_by_selector(&key_token.selector).await.unwrap().unwrap();
        assert!(used.last_used_at.is_some());
        let revoked = revoke_key(&store, &alice.id, &key.id).await.unwrap();
        let again = revoke_key(&store, &alice.id, &key.id).await.unwrap();
        assert_eq!(revoked.revoked_at, again.revoked_at, "revoking twice keeps the first time");
        assert!(matches!(revoke_key(&store, "usr-other", &key.id).await, Err(CoreError::NotFound(_))));
        assert_eq!(store.list_api_keys(&alice.id, PAGE).await.unwrap().items, vec![again]);
    })
    .await;
}

/// A subject belongs to one account and an account holds one subject of each provider:
/// a second link either way (two sign-ins racing to link one account, say) is a
/// conflict and changes nothing.
#[tokio::test]
async fn an_account_links_one_subject_per_provider() {
    on_every_backend(|store| async move {
        let alice = add_user(&store, user("alice", &[])).await.unwrap();
        let bob = add_user(&store, user("bob", &[])).await.unwrap();
        let fields = AuthProviderFields { name: "corp".into(), ..Default::default() };
        let provider = add_provider(&store, "ap-corp", &fields).await.unwrap();
        let other = AuthProviderFields { name: "other".into(), ..Default::default() };
        let other = add_provider(&store, "ap-other", &other).await.unwrap();
        write!(store, |tx| store.link_external_identity(tx, &alice.id, &provider.id, "subject-1")).unwrap();
        let second = write!(store, |tx| store.link_external_identity(tx, &alice.id, &provider.id, "subject-2"));
        assert!(matches!(second, Err(CoreError::Conflict(_))), "{second:?}");
        let taken = write!(store, |tx| store.link_external_identity(tx, &bob.id, &provider.id, "subject-1"));
        assert!(matches!(taken, Err(CoreError::Conflict(_))), "{taken:?}");
        // Another provider's subject is no conflict.
        write!(store, |tx| store.link_external_identity(tx, &alice.id, &other.id, "subject-2")).unwrap();
        let holder = |subject: &'static str| {
            let (store, provider_id) = (&store, provider.id.clone());
            async move { store.find_user_by_external_identity(&provider_id, subject).await.unwrap().map(|user| user.id) }
        };
        assert_eq!(holder("subject-1").await, Some(alice.id.clone()));
        assert_eq!(holder("subject-2").await, None, "the refused link left nothing");
        assert_eq!(store.external_identity_providers_of(&bob.id).await.unwrap(), Vec::<String>::new());
    })
    .await;
}

#[tokio::test]
async fn gateways_grants_networks_and_visibility() {
    on_every_backend(|store| async move {
        let alice = add_user(&store, user("alice", &["eng"])).await.unwrap();
        let bob = add_user(&store, user("bob", &[])).await.unwrap();
        let east = create_gateway(&store, "east").await.unwrap();
        let west = create_gateway(&store, "west").await.unwrap();
        assert!(matches!(create_gateway(&store, "east").await, Err(CoreError::Conflict(_))));

        link(&store, &east.id, GatewayLink::User, &alice.id).await;
        link(&store, &east.id, GatewayLink::User, &alice.id).await;
        link(&store, &west.id, GatewayLink::Group, "eng").await;
        let visible = store.list_gateways_for_user(Some(GatewayRole::Gateway), &alice.id, PAGE).await.unwrap();
        assert_eq!(visible.total, 2);
        assert_eq!(visible.items.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["east", "west"]);
        assert_eq!(store.list_gateways_for_user(Some(GatewayRole::Gateway), &bob.id, PAGE).await.unwrap().total, 0);
        let second_page = store
            .list_gateways_for_user(Some(GatewayRole::Gateway), &alice.id, Page { number: 2, size: 1 })
            .await
            .unwrap();
        assert_eq!((second_page.total, second_page.items[0].name.as_str()), (2, "west"));

        let off = GatewayChanges { is_active: Some(false), ..Default::default() };
        write!(store, |tx| store.update_gateway(tx, &west.id, off)).unwrap();
        assert_eq!(store.list_gateways_for_user(Some(GatewayRole::Gateway), &alice.id, PAGE).await.unwrap().total, 1);
        let renamed = GatewayChanges { name: Some("west".into()), ..Default::default() };
        assert!(matches!(write!(store, |tx| store.update_gateway(tx, &east.id, renamed)), Err(CoreError::Conflict(_))));

        let net = add_network(
            &store,
            NewNetwork {
                id: new_id(IdKind::Network),
                name: "office".into(),
                description: String::new(),
                cidrs: vec!["10.1.0.0/16".into()],
            },
        )
        .await
        .unwrap();
        let linked = link(&store, &east.id, GatewayLink::Network, &net.id).await;
        assert_eq!(linked.network_ids, vec![net.id.clone()]);
        assert_eq!(linked.user_ids, vec![alice.id.clone()]);
        let cidrs =
            NetworkChanges { cidrs: Some(vec!["10.2.0.0/16".into(), "10.3.0.0/16".into()]), ..Default::default() };
        write!(store, |tx| store.update_network(tx, &net.id, cidrs)).unwrap();
        let net = store.require_network(&net.id).await.unwrap();
        assert_eq!(net.cidrs, ["10.2.0.0/16", "10.3.0.0/16"]);
        assert_eq!(net.gateway_ids, vec![east.id.clone()]);
        let attached = write!(store, |tx| store.gateways_of_networks(tx, &[&net.id])).unwrap();
        assert_eq!(attached, net.gateway_ids, "the attached gateways get the change");

        assert!(matches!(
            write!(store, |tx| store.unlink_gateway(tx, &east.id, GatewayLink::Group, "eng")),
            Err(CoreError::NotFound(_))
        ));
        let revoked = write!(store, |tx| store.delete_gateway(tx, &east.id)).unwrap();
        assert_eq!(revoked, 0, "a gateway without spokes revokes nothing");
        assert!(store.require_network(&net.id).await.unwrap().gateway_ids.is_empty());
        assert!(matches!(write!(store, |tx| store.delete_gateway(tx, &east.id)), Err(CoreError::NotFound(_))));
        assert!(write!(store, |tx| store.gateways_of_networks(tx, &[&net.id])).unwrap().is_empty());
        write!(store, |tx| store.delete_network(tx, &net.id)).unwrap();
        assert_eq!(store.list_networks(PAGE).await.unwrap().total, 0);
    })
    .await;
}

#[tokio::test]
async fn the_sign_in_record_is_pruned_by_age_and_size_and_takes_any_input() {
    on_every_backend(|store| async move {
        for n in 0..5 {
            let subject = format!("user{n}\u{0}\r\n{}", "x".repeat(500));
            let event = LoginEvent {
                id: new_id(IdKind::LoginEvent),
                provider: "local",
                subject: &subject,
                client_address: "192.0.2.1",
                success: false,
                reason: "invalid username or password",
            };
            store.record_login_event(event).await.unwrap();
        }
        assert_eq!(store.prune_login_events(0, 3).await.unwrap(), 2, "all but the newest three go");
        assert_eq!(store.prune_login_events(0, 3).await.unwrap(), 0);
        let tomorrow = gatekey_core::store::unix_now() + 86_400;
        assert_eq!(store.prune_login_events(tomorrow, 100).await.unwrap(), 3, "everything older goes");
    })
    .await;
}

/// Inside `tx`: revokes `serial` and, when that revoked it, stores the next CRL (a
/// stand-in listing the revoked serials as text) with its event; answers that CRL.
async fn revoke_with_crl(store: &Store, tx: &mut WriteTx, serial: &str) -> Result<Option<CrlRecord>, CoreError> {
    let (_, newly_revoked) = store.revoke_certificate(tx, serial, "key_compromise").await?;
    if !newly_revoked {
        return Ok(None);
    }
    let (number, revoked) = store.next_crl_contents(tx).await?;
    let serials = revoked.iter().map(|certificate| certificate.serial.as_str()).collect::<Vec<_>>().join(",");
    let crl = CrlRecord { number, der_base64: serials, this_update: 1, next_update: 2 };
    store.insert_crl(tx, &crl).await?;
    let event = OutboxEntry { node_id: "node-test".into(), payload: format!("{{\"crl\":{number}}}") };
    store.append_fleet_event(tx, &event).await?;
    Ok(Some(crl))
}

/// No store function commits on its own: a change, the events written beside it and the
/// CRL it signs exist when its transaction commits, and none of them when it is dropped
/// (an operation that failed half-way). Concurrent revocations get consecutive CRLs.
#[tokio::test]
async fn a_change_its_events_and_its_crl_commit_together_or_not_at_all() {
    on_every_backend(|store| async move {
        let alice = add_user(&store, user("alice", &[])).await.unwrap();
        let gw = create_gateway(&store, "gw").await.unwrap();
        let certificate = CertificateRecord {
            serial: "0a0b".into(),
            kind: gatekey_core::domain::CertificateKind::Client,
            subject: "alice@example.com".into(),
            user_id: Some(alice.id.clone()),
            gateway_id: Some(gw.id.clone()),
            issued_at: 1,
            expires_at: i64::MAX / 2,
            revoked_at: None,
            revocation_reason: None,
        };
        store.record_certificate(&certificate).await.unwrap();
        write!(store, |tx| store.record_session_connected(tx, &gw.id, &session_report("alice@example.com", "0a0b")))
            .unwrap();
        let before = store.latest_fleet_event_id().await.unwrap();
        let kill = OutboxEntry { node_id: "node-test".into(), payload: "{\"kill\":\"s-1\"}".into() };

        // Written and then dropped: nothing is left.
        let mut tx = store.begin_write().await.unwrap();
        let sessions = store.open_sessions_in(&mut tx, SessionsOf::Certificate("0a0b")).await.unwrap();
        assert_eq!(sessions.len(), 1);
        store.append_fleet_event(&mut tx, &kill).await.unwrap();
        assert!(revoke_with_crl(&store, &mut tx, "0a0b").await.unwrap().is_some());
        drop(tx);
        assert!(store.find_certificate("0a0b").await.unwrap().unwrap().revoked_at.is_none(), "a revocation kept");
        assert_eq!(store.latest_fleet_event_id().await.unwrap(), before, "an event without its change");
        assert!(store.latest_crl().await.unwrap().is_none(), "a CRL without its revocation");

        // Committed: all three are there.
        let mut tx = store.begin_write().await.unwrap();
        store.append_fleet_event(&mut tx, &kill).await.unwrap();
        let crl = revoke_with_crl(&store, &mut tx, "0a0b").await.unwrap().expect("a new CRL");
        tx.commit().await.unwrap();
        assert!(store.find_certificate("0a0b").await.unwrap().unwrap().revoked_at.is_some());
        assert_eq!((crl.number, crl.der_base64.as_str()), (1, "0a0b"));
        assert_eq!(store.latest_crl().await.unwrap().map(|latest| latest.number), Some(1));
        let events = store.fleet_events_after(None, before, 10).await.unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!((events[0].node_id.as_str(), events[0].payload.as_str()), ("node-test", kill.payload.as_str()));
        assert_eq!(events[1].payload, "{\"crl\":1}");

        // Revoking it again changes nothing and signs no CRL.
        assert!(write!(store, |tx| revoke_with_crl(&store, tx, "0a0b")).unwrap().is_none());

        // Revocations racing on two connections: consecutive CRLs, the later listing both.
        for (serial, subject) in [("0c0c", "bob"), ("0d0d", "carol")] {
            let certificate =
                CertificateRecord { serial: serial.into(), subject: subject.into(), ..certificate.clone() };
            store.record_certificate(&certificate).await.unwrap();
        }
        let (first, second) = tokio::join!(async { write!(store, |tx| revoke_with_crl(&store, tx, "0c0c")) }, async {
            write!(store, |tx| revoke_with_crl(&store, tx, "0d0d"))
        },);
        let mut crls = [first.unwrap().unwrap(), second.unwrap().unwrap()];
        crls.sort_by_key(|crl| crl.number);
        assert_eq!([crls[0].number, crls[1].number], [2, 3]);
        assert_eq!(crls[1].der_base64, "0a0b,0c0c,0d0d", "the later CRL lists every revocation before it");

        // A rule and its gateways' new rule versions: both or neither.
        let network = add_network(&store, lan()).await.unwrap();
        link(&store, &gw.id, GatewayLink::Network, &network.id).await;
        let (version, before) =
            (store.rules_version(&gw.id).await.unwrap(), store.latest_fleet_event_id().await.unwrap());
        for commit in [false, true] {
            let mut tx = store.begin_write().await.unwrap();
            store.create_access_rule(&mut tx, "rule-1", &web_rule(&network.id)).await.unwrap();
            let gateways = store.gateways_of_networks(&mut tx, &[&network.id]).await.unwrap();
            assert_eq!(gateways, std::slice::from_ref(&gw.id));
            store.bump_rule_versions(&mut tx, &gateways).await.unwrap();
            store.append_fleet_event(&mut tx, &pushed()).await.unwrap();
            if commit {
                tx.commit().await.unwrap();
            }
        }
        assert_eq!(store.list_access_rules(PAGE).await.unwrap().total, 1);
        assert_eq!(store.rules_version(&gw.id).await.unwrap(), version + 1, "one bump, by the committed one");
        assert_eq!(store.fleet_events_after(None, before, 10).await.unwrap().len(), 1);
    })
    .await;
}

/// A database migrated by a release before `sqlx::migrate!` (its versions in
/// `schema_migrations`) is adopted without re-running anything, and an applied migration
/// whose recorded checksum no longer matches its file stops the start-up.
#[tokio::test]
async fn migrations_adopt_the_legacy_record_and_refuse_edited_ones() {
    for backend in backends() {
        let dir = TempDir::new("store");
        let url = fresh_database_url(backend, dir.path()).await;
        let store = Store::open(&url).await.unwrap();
        add_user(&store, user("kept", &[])).await.unwrap();
        store.close().await;

        // Rewind the record to what the hand-written runner left behind.
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
        assert!(applied >= 10, "{backend:?}: {applied} migrations recorded");
        sqlx::query("DROP TABLE _sqlx_migrations").execute(&pool).await.unwrap();
        sqlx::query("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        for version in 1..=applied {
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)")
                .bind(version)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;

        // Re-running any migration would fail on its existing tables; adopting twice
        // changes nothing.
        for _ in 0..2 {
            Store::open(&url).await.unwrap_or_else(|e| panic!("{backend:?}: adoption failed: {e}")).close().await;
        }
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.list_users(PAGE, "").await.unwrap().total, 1, "{backend:?}: data kept");
        store.close().await;
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
        assert_eq!(recorded, applied, "{backend:?}");
        let legacy: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations").fetch_one(&pool).await.unwrap();
        assert_eq!(legacy, applied, "{backend:?}: the legacy record stays for nodes of the earlier release");

        // An applied migration edited since: the node refuses to start.
        sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 1")
            .bind(vec![0_u8; 48])
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let refused = Store::open(&url).await.unwrap_err();
        assert!(refused.to_string().contains("migration"), "{backend:?}: {refused}");
    }
}

/// Snapshots asked for together are read together and each is right: its gateway's
/// version and clients, none for a deleted gateway; and a gateway whose stored row
/// cannot be read fails alone, the others of its batch still get theirs.
#[tokio::test]
async fn batched_snapshots_are_each_gateways_own_and_a_broken_one_fails_alone() {
    use gatekey_core::snapshot_batch::SnapshotBatcher;
    for backend in backends() {
        let dir = TempDir::new("store");
        let url = fresh_database_url(backend, dir.path()).await;
        let store = Store::open(&url).await.unwrap();
        let alice = add_user(&store, user("alice", &["eng"])).await.unwrap();
        let network = lan();
        let network = add_network(&store, network).await.unwrap();
        let mut gateways = Vec::new();
        for n in 0..6 {
            let gateway = create_gateway(&store, &format!("gw{n}")).await.unwrap();
            link(&store, &gateway.id, GatewayLink::Network, &network.id).await;
            // Half are granted to alice's group, half to nobody.
            if n % 2 == 0 {
                link(&store, &gateway.id, GatewayLink::Group, "eng").await;
            }
            gateways.push(gateway.id);
        }
        let rule = web_rule(&network.id);
        write!(store, |tx| store.create_access_rule(tx, "rule-web", &rule)).unwrap();

        let batcher = SnapshotBatcher::default();
        let asked = futures::future::join_all(gateways.iter().map(|id| batcher.snapshot(&store, id))).await;
        for (n, (id, snapshot)) in gateways.iter().zip(asked).enumerate() {
            let snapshot = snapshot.unwrap().expect("a snapshot of an existing gateway");
            assert_eq!(snapshot.version, store.rules_version(id).await.unwrap(), "{backend:?} {id}");
            let names: Vec<_> = snapshot.clients.iter().map(|client| client.user_id.as_str()).collect();
            let expected: Vec<&str> = if n % 2 == 0 { vec![alice.id.as_str()] } else { vec![] };
            assert_eq!(names, expected, "{backend:?} {id}");
        }
        let deleted = gateways.pop().unwrap();
        write!(store, |tx| store.delete_gateway(tx, &deleted)).unwrap();
        assert!(batcher.snapshot(&store, &deleted).await.unwrap().is_none(), "{backend:?}: a deleted gateway has none");

        // A row changed behind GateKey's back breaks its own snapshot only.
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query("UPDATE gateways SET role = 'carrier-pigeon' WHERE id = $1")
            .bind(&gateways[0])
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let asked = futures::future::join_all(gateways.iter().map(|id| batcher.snapshot(&store, id))).await;
        assert!(asked[0].is_err(), "{backend:?}: the broken gateway's snapshot");
        assert!(asked[1..].iter().all(|snapshot| matches!(snapshot, Ok(Some(_)))), "{backend:?}: {asked:?}");
        store.close().await;
    }
}

/// Rule-version bumps and batched heartbeats and acknowledgements touch the same gateway
/// rows from concurrent transactions in any order the callers give: they lock the rows
/// in one order, so none fails with a deadlock.
#[tokio::test]
async fn concurrent_batches_of_gateway_updates_never_deadlock() {
    on_every_backend(|store| async move {
        let mut ids = Vec::new();
        for n in 0..40 {
            ids.push(create_gateway(&store, &format!("gw{n:02}")).await.unwrap().id);
        }
        let reversed: Vec<String> = ids.iter().rev().cloned().collect();
        let shuffled: Vec<String> = ids.iter().step_by(2).chain(ids.iter().skip(1).step_by(2)).cloned().collect();
        for round in 0..15_i64 {
            let heartbeats: Vec<(String, i64)> = shuffled.iter().map(|id| (id.clone(), 1_000 + round)).collect();
            let applied: Vec<(String, u64)> = reversed.iter().map(|id| (id.clone(), 1)).collect();
            let (bumped, beats, acks) = tokio::join!(
                async { write!(store, |tx| store.bump_rule_versions(tx, &reversed)) },
                async { write!(store, |tx| store.record_heartbeats(tx, &heartbeats)) },
                async { write!(store, |tx| store.record_rules_applied(tx, &applied)) },
            );
            bumped.unwrap();
            beats.unwrap();
            acks.unwrap();
        }
        assert_eq!(store.rules_version(&ids[0]).await.unwrap(), store.rules_version(&ids[39]).await.unwrap());
    })
    .await;
}
