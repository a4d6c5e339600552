//! The embedded certificate authority: one ECDSA P-256 root whose key lives
//! encrypted in the store, short-lived client and gateway server certificates,
//! signed CRLs, and per-gateway tls-crypt keys.

pub mod lifecycle;
pub mod serial;

use crate::error::{CoreError, CoreResult};
use crate::secrets::random_bytes;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};

/// Slack on `notBefore` for clients whose clocks run a little behind.
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// What a certificate is for.
#[derive(Debug, Clone)]
pub enum CertificatePurpose {
    /// A VPN client: CN = the user's e-mail, clientAuth.
    Client {
        /// The user's e-mail.
        email: String,
    },
    /// A mesh spoke's tunnel to its hub: CN = the spoke's id, clientAuth.
    Spoke {
        /// The spoke's id.
        spoke_id: String,
    },
    /// A gateway's OpenVPN server: CN and SAN = its public host name, serverAuth.
    Server {
        /// The gateway's host name or IP address.
        hostname: String,
    },
}

/// A freshly issued certificate with its key.
pub struct IssuedCertificate {
    /// Canonical serial.
    pub serial: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub private_key_pem: String,
    /// Unix seconds of `notAfter`.
    pub not_after: i64,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A revoked certificate as listed in a CRL.
#[derive(Debug, Clone)]
pub struct RevokedEntry {
    /// Canonical serial.
    pub serial: String,
    /// Unix seconds.
    pub revoked_at: i64,
    /// RFC 5280 reason.
    pub reason: RevocationReasonName,
}

/// A signed CRL in both encodings.
#[derive(Debug, Clone)]
pub struct SignedCrl {
    /// DER.
    pub der: Vec<u8>,
    /// PEM.
    pub pem: String,
}

/// The CA: its certificate and the signing key, decrypted in memory only.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    certificate_pem: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertificateAuthority(..)")
    }
}

/// The parameters that identify the CA as an issuer; the same at creation and load.
fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "GateKey");
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

fn pki_error(what: &str) -> impl FnOnce(rcgen::Error) -> CoreError + '_ {
    move |error| CoreError::Internal(format!("{what}: {error}"))
}

/// Unix seconds to a time.
pub fn datetime(unix_seconds: i64) -> CoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .map_err(|_| CoreError::Internal(format!("time {unix_seconds} out of range")))
}

impl CertificateAuthority {
    /// A new self-signed root valid for `validity_days`; returns it and its private key PEM.
    pub fn create(common_name: &str, validity_days: i64) -> CoreResult<(CertificateAuthority, String)> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki_error("CA key generation"))?;
        let mut params = ca_params(common_name);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + Duration::days(validity_days);
        params.serial_number = Some(SerialNumber::from_slice(&serial::random_serial_bytes()));
        let certificate = params.self_signed(&key).map_err(pki_error("CA self-signing"))?;
        let private_key_pem = key.serialize_pem();
        let authority = CertificateAuthority {
            issuer: Issuer::new(ca_params(common_name), key),
            certificate_pem: certificate.pem(),
        };
        Ok((authority, private_key_pem))
    }

    /// The CA from its stored certificate and decrypted key.
    pub fn load(common_name: &str, certificate_pem: String, private_key_pem: &str) -> CoreResult<CertificateAuthority> {
        let key = KeyPair::from_pem(private_key_pem).map_err(pki_error("CA key"))?;
        Ok(CertificateAuthority { issuer: Issuer::new(ca_params(common_name), key), certificate_pem })
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// Issues a certificate with a fresh P-256 key, valid for `lifetime_seconds`.
    pub fn issue(&self, purpose: &CertificatePurpose, lifetime_seconds: i64) -> CoreResult<IssuedCertificate> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki_error("key generation"))?;
        let serial_bytes = serial::random_serial_bytes();
        let now = OffsetDateTime::now_utc();
        let not_after = now + Duration::seconds(lifetime_seconds);
        let mut params = CertificateParams::default();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from_slice(&serial_bytes));
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let mut name = DistinguishedName::new();
        match purpose {
            CertificatePurpose::Client { email: common_name } | CertificatePurpose::Spoke { spoke_id: common_name } => {
                name.push(DnType::CommonName, common_name.as_str());
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            CertificatePurpose::Server { hostname } => {
                name.push(DnType::CommonName, hostname.as_str());
                params.subject_alt_names = vec![match hostname.parse::<IpAddr>() {
                    Ok(address) => SanType::IpAddress(address),
                    Err(_) => SanType::DnsName(hostname.clone().try_into().map_err(pki_error("server name"))?),
                }];
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyAgreement];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
        }
        params.distinguished_name = name;
        let certificate = params.signed_by(&key, &self.issuer).map_err(pki_error("certificate signing"))?;
        Ok(IssuedCertificate {
            serial: serial::canonical_from_bytes(&serial_bytes),
            certificate_pem: certificate.pem(),
            private_key_pem: key.serialize_pem(),
            not_after: not_after.unix_timestamp(),
        })
    }

    /// Signs CRL number `number` listing `revoked`, valid from `this_update` to `next_update`.
    pub fn sign_crl(
        &self,
        number: u64,
        revoked: &[RevokedEntry],
        this_update: i64,
        next_update: i64,
    ) -> CoreResult<SignedCrl> {
        let revoked_certs = revoked
            .iter()
            .map(|entry| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial::to_bytes(&entry.serial)?),
                    revocation_time: datetime(entry.revoked_at)?,
                    reason_code: Some(entry.reason.rcgen()),
                    invalidity_date: None,
                })
            })
            .collect::<CoreResult<Vec<_>>>()?;
        let params = CertificateRevocationListParams {
            this_update: datetime(this_update)?,
            next_update: datetime(next_update)?,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).map_err(pki_error("CRL signing"))?;
        Ok(SignedCrl { der: crl.der().to_vec(), pem: crl.pem().map_err(pki_error("CRL encoding"))? })
    }
}

/// The RFC 5280 revocation reasons GateKey accepts, by their snake_case names.
/// (`certificateHold` and `removeFromCRL` are left out: there is no un-revoke.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationReasonName {
    /// unspecified (0)
    Unspecified,
    /// keyCompromise (1)
    KeyCompromise,
    /// cACompromise (2)
    CaCompromise,
    /// affiliationChanged (3)
    AffiliationChanged,
    /// superseded (4)
    Superseded,
    /// cessationOfOperation (5)
    CessationOfOperation,
    /// privilegeWithdrawn (9)
    PrivilegeWithdrawn,
    /// aACompromise (10)
    AaCompromise,
}

const REASONS: [(RevocationReasonName, &str); 8] = [
    (RevocationReasonName::Unspecified, "unspecified"),
    (RevocationReasonName::KeyCompromise, "key_compromise"),
    (RevocationReasonName::CaCompromise, "ca_compromise"),
    (RevocationReasonName::AffiliationChanged, "affiliation_changed"),
    (RevocationReasonName::Superseded, "superseded"),
    (RevocationReasonName::CessationOfOperation, "cessation_of_operation"),
    (RevocationReasonName::PrivilegeWithdrawn, "privilege_withdrawn"),
    (RevocationReasonName::AaCompromise, "aa_compromise"),
];

impl RevocationReasonName {
    /// Parses a reason name; empty means `unspecified`.
    pub fn parse(name: &str) -> CoreResult<Self> {
        if name.is_empty() {
            return Ok(RevocationReasonName::Unspecified);
        }
        REASONS.iter().find(|(_, text)| *text == name).map(|(reason, _)| *reason).ok_or_else(|| {
            let accepted: Vec<_> = REASONS.iter().map(|(_, text)| *text).collect();
            CoreError::InvalidArgument(format!("reason: `{name}` is not one of {}", accepted.join(", ")))
        })
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        REASONS.iter().find(|(reason, _)| *reason == self).map_or("unspecified", |(_, text)| text)
    }

    fn rcgen(self) -> RevocationReason {
        match self {
            RevocationReasonName::Unspecified => RevocationReason::Unspecified,
            RevocationReasonName::KeyCompromise => RevocationReason::KeyCompromise,
            RevocationReasonName::CaCompromise => RevocationReason::CaCompromise,
            RevocationReasonName::AffiliationChanged => RevocationReason::AffiliationChanged,
            RevocationReasonName::Superseded => RevocationReason::Superseded,
            RevocationReasonName::CessationOfOperation => RevocationReason::CessationOfOperation,
            RevocationReasonName::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
            RevocationReasonName::AaCompromise => RevocationReason::AaCompromise,
        }
    }
}

/// A new OpenVPN tls-crypt key (a 2048-bit "OpenVPN Static key V1").
pub fn new_tls_crypt_key() -> String {
    let key = random_bytes::<256>();
    let mut text = String::from("-----BEGIN OpenVPN Static key V1-----\n");
    for line in key.chunks(16) {
        text.push_str(&hex::encode(line));
        text.push('\n');
    }
    text.push_str("-----END OpenVPN Static key V1-----\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_issues_after_a_reload() {
        let (ca, key_pem) = CertificateAuthority::create("GateKey test CA", 30).unwrap();
        let reloaded =
            CertificateAuthority::load("GateKey test CA", ca.certificate_pem().to_owned(), &key_pem).unwrap();
        let issued = reloaded.issue(&CertificatePurpose::Client { email: "a@example.com".into() }, 3600).unwrap();
        assert!(issued.certificate_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!format!("{issued:?}").contains("PRIVATE"));
        let crl = reloaded
            .sign_crl(
                2,
                &[RevokedEntry {
                    serial: issued.serial.clone(),
                    revoked_at: 1_700_000_000,
                    reason: RevocationReasonName::KeyCompromise,
                }],
                1_700_000_000,
                1_700_600_000,
            )
            .unwrap();
        assert!(crl.pem.contains("X509 CRL") && !crl.der.is_empty());
    }

    #[test]
    fn reasons_round_trip_and_reject_unknowns() {
        for (reason, text) in REASONS {
            assert_eq!(RevocationReasonName::parse(text).unwrap(), reason);
            assert_eq!(reason.as_str(), text);
        }
        assert_eq!(RevocationReasonName::parse("").unwrap(), RevocationReasonName::Unspecified);
        assert!(RevocationReasonName::parse("keyCompromise").is_err());
    }

    #[test]
    fn tls_crypt_keys_have_openvpn_static_key_shape() {
        let key = new_tls_crypt_key();
        assert_eq!(key.lines().count(), 18);
        assert_ne!(key, new_tls_crypt_key());
    }
}
