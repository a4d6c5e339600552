//! Secrets: random tokens (sessions, API keys, gateway tokens) stored as a public
//! selector plus a SHA-256 verifier compared in constant time, and argon2id passwords.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Start of every API key.
pub const API_KEY_PREFIX: &str = "gk_";
/// Start of every session token.
pub const SESSION_TOKEN_PREFIX: &str = "gks_";
/// Start of every gateway agent token.
pub const GATEWAY_TOKEN_PREFIX: &str = "gkgw_";
/// Start of every mesh spoke agent token.
pub const SPOKE_TOKEN_PREFIX: &str = "gksp_";

/// Characters of a token's random part used as its lookup key.
const SELECTOR_LEN: usize = 12;

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS RNG failing is unrecoverable: without randomness no secret is safe.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// A freshly minted secret token, to be shown once and stored as selector + verifier.
pub struct MintedToken {
    /// The whole token, for the client only.
    pub secret: String,
    /// The public lookup key stored beside the verifier.
    pub selector: String,
    /// SHA-256 of the whole token, hex.
    pub verifier: String,
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken").field("selector", &self.selector).finish_non_exhaustive()
    }
}

/// Mints a token: `prefix` followed by 256 random bits in URL-safe base64.
pub fn mint_token(prefix: &str) -> MintedToken {
    let secret = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()));
    let selector = secret[prefix.len()..prefix.len() + SELECTOR_LEN].to_owned();
    let verifier = token_verifier(&secret);
    MintedToken { secret, selector, verifier }
}

/// The selector of a presented token, or `None` if it cannot be one of ours.
pub fn token_selector<'a>(token: &'a str, prefix: &str) -> Option<&'a str> {
    let random_part = token.strip_prefix(prefix)?;
    if random_part.len() != 43 || !random_part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return None;
    }
    random_part.get(..SELECTOR_LEN)
}

/// SHA-256 of a token, hex. Tokens carry 256 random bits, so a fast hash suffices.
pub fn token_verifier(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether a presented token matches a stored verifier, in constant time.
pub fn token_matches(token: &str, stored_verifier: &str) -> bool {
    token_verifier(token).as_bytes().ct_eq(stored_verifier.as_bytes()).into()
}

/// An argon2id PHC string for a password.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&random_bytes::<16>())?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Whether `password` matches a stored PHC string (argon2 compares in constant time).
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A random password of 24 URL-safe characters, for the bootstrap admin.
pub fn random_password() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<18>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_differ() {
        let a = mint_token("gk_");
        let b = mint_token("gk_");
        assert_ne!(a.secret, b.secret);
        assert_eq!(token_selector(&a.secret, "gk_"), Some(a.selector.as_str()));
        assert!(token_matches(&a.secret, &a.verifier));
        assert!(!token_matches(&b.secret, &a.verifier));
        assert!(!format!("{a:?}").contains(&a.secret));
    }

    #[test]
    fn foreign_tokens_have_no_selector() {
        assert_eq!(token_selector("gk_short", "gk_"), None);
        assert_eq!(token_selector("xx_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "gk_"), None);
        assert_eq!(token_selector("gk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!", "gk_"), None);
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("anything", "not a phc string"));
    }
}
