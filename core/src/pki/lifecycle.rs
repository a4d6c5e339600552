//! The CA and CRL as state in the store: loading or creating the CA on start,
//! keeping a current signed CRL, and each gateway's tls-crypt key.

use super::{CertificateAuthority, RevocationReasonName, RevokedEntry, SignedCrl, new_tls_crypt_key};
use crate::context::CoreContext;
use crate::domain::UnitOfWork;
use crate::error::{CoreError, CoreResult};
use crate::sealing::SecretBox;
use crate::store::{AuthorityRecord, CertificateRecord, CrlRecord, Store, unix_now};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Seconds a CRL is valid (`nextUpdate - thisUpdate`).
const CRL_VALIDITY_SECONDS: i64 = 7 * 24 * 3600;
/// Age after which a CRL is re-signed even without a new revocation.
const CRL_REFRESH_SECONDS: i64 = 24 * 3600;
/// Context under which the CA key is sealed.
const CA_KEY_CONTEXT: &str = "ca-private-key";

/// Loads the CA from the store, creating it on the very first start. When several
/// nodes start at once, the first insert wins and every node uses that CA.
pub async fn load_or_create_authority(
    store: &Store,
    sealer: &SecretBox,
    validity_days: i64,
) -> CoreResult<CertificateAuthority> {
    let record = match store.find_authority().await? {
        Some(record) => record,
        None => {
            let common_name = format!("GateKey CA {}", hex::encode(crate::secrets::random_bytes::<4>()));
            let (authority, private_key_pem) = CertificateAuthority::create(&common_name, validity_days)?;
            let record = AuthorityRecord {
                common_name,
                certificate_pem: authority.certificate_pem().to_owned(),
                sealed_private_key: sealer.seal(CA_KEY_CONTEXT, private_key_pem.as_bytes())?,
            };
            let stored = store.insert_authority_if_absent(&record).await?;
            if stored.certificate_pem == record.certificate_pem {
                tracing::info!(ca = %stored.common_name, "created the certificate authority");
            }
            stored
        }
    };
    let private_key_pem = sealer.open_text(CA_KEY_CONTEXT, &record.sealed_private_key)?;
    CertificateAuthority::load(&record.common_name, record.certificate_pem, &private_key_pem)
}

/// The CRL currently in force.
#[derive(Debug, Clone)]
pub struct CurrentCrl {
    /// CRL number.
    pub number: u64,
    /// Signed CRL.
    pub signed: SignedCrl,
    /// Unix seconds.
    pub this_update: i64,
    /// Unix seconds.
    pub next_update: i64,
}

impl CurrentCrl {
    /// A stored CRL, decoded.
    pub fn from_record(record: &CrlRecord) -> CoreResult<CurrentCrl> {
        let der =
            STANDARD.decode(&record.der_base64).map_err(|_| CoreError::Internal("stored CRL is not base64".into()))?;
        let pem = pem_of_crl(&der);
        Ok(CurrentCrl {
            number: u64::try_from(record.number).unwrap_or(0),
            signed: SignedCrl { der, pem },
            this_update: record.this_update,
            next_update: record.next_update,
        })
    }
}

/// The newest CRL (signing the first one if there is none).
pub async fn current_crl(context: &CoreContext) -> CoreResult<CurrentCrl> {
    match context.store.latest_crl().await? {
        Some(record) => CurrentCrl::from_record(&record),
        None => refresh_crl(context).await,
    }
}

/// Signs a fresh CRL when there is none or the newest is more than a day old (it is
/// valid for a week), and hands it to every agent on every node. Runs at start-up,
/// before anything reads the CRL, and then every hour.
pub async fn refresh_crl_if_due(context: &CoreContext) -> CoreResult<()> {
    match context.store.latest_crl().await? {
        Some(record) if unix_now() - record.this_update < CRL_REFRESH_SECONDS => Ok(()),
        _ => refresh_crl(context).await.map(|_| ()),
    }
}

/// Signs and stores the next CRL in a unit of work of its own, with its event.
async fn refresh_crl(context: &CoreContext) -> CoreResult<CurrentCrl> {
    let mut work = UnitOfWork::begin(context).await?;
    let crl = work.sign_next_crl().await?;
    work.commit().await?;
    Ok(crl)
}

/// The CRL numbered `number` listing `revoked`, signed by `authority`.
pub fn sign_crl(authority: &CertificateAuthority, number: i64, revoked: &[CertificateRecord]) -> CoreResult<CrlRecord> {
    let revoked = revoked
        .iter()
        .map(|certificate| {
            Ok(RevokedEntry {
                revoked_at: certificate.revoked_at.unwrap_or_else(unix_now),
                reason: RevocationReasonName::parse(certificate.revocation_reason.as_deref().unwrap_or_default())?,
                serial: certificate.serial.clone(),
            })
        })
        .collect::<CoreResult<Vec<_>>>()?;
    let this_update = unix_now();
    let next_update = this_update + CRL_VALIDITY_SECONDS;
    let number_unsigned = u64::try_from(number).map_err(|_| CoreError::Internal("negative CRL number".into()))?;
    let signed = authority.sign_crl(number_unsigned, &revoked, this_update, next_update)?;
    Ok(CrlRecord { number, der_base64: STANDARD.encode(&signed.der), this_update, next_update })
}

fn pem_of_crl(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN X509 CRL-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END X509 CRL-----\n");
    pem
}

/// A gateway's tls-crypt key, created on first use.
pub async fn gateway_tls_crypt_key(store: &Store, sealer: &SecretBox, gateway_id: &str) -> CoreResult<String> {
    let context = format!("tls-crypt:{gateway_id}");
    let sealed = match store.sealed_tls_crypt_key(gateway_id).await? {
        Some(sealed) => sealed,
        None => {
            store
                .set_tls_crypt_key_if_absent(gateway_id, &sealer.seal(&context, new_tls_crypt_key().as_bytes())?)
                .await?
        }
    };
    sealer.open_text(&context, &sealed)
}
