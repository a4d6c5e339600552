//! Proof that a change riding a cookie comes from a page this site served (a
//! synchronizer token, kept by no one): the token is derived from the secret the
//! cookie carries, so only pages rendered for that browser know it, a cross-site page
//! cannot read it, and a cookie planted from a sibling domain cannot forge it.
//! - With a session: `X-CSRF-Token` (or the console forms' `csrf_token` field) equals
//!   [`session_token`] of the session cookie. Signing in again changes it.
//! - Before one (the console's sign-in form): the field equals [`login_token`] of the
//!   random `gatekey_csrf` cookie the sign-in page set, so no other site can sign a
//!   browser into an account of its choosing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The request header that carries the token.
pub const HEADER: &str = "x-csrf-token";
/// The console forms' field that carries the token.
pub const FIELD: &str = "csrf_token";

fn derive(purpose: &str, secret: &str) -> String {
    let digest = Sha256::new().chain_update(purpose).chain_update([0]).chain_update(secret).finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// The token of changes made with the session whose token is `session_token`.
pub fn session_token(session_token: &str) -> String {
    derive("gatekey csrf v1", session_token)
}

/// The token of the sign-in form in the browser holding `nonce` in its `gatekey_csrf`
/// cookie.
pub fn login_token(nonce: &str) -> String {
    derive("gatekey login csrf v1", nonce)
}

/// A fresh random nonce for the `gatekey_csrf` cookie.
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 32];
    // The OS generator does not fail on supported systems; an all-zero nonce would only
    // weaken login CSRF protection, never sign anyone in.
    let _ = getrandom::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether a presented token is the expected one (in constant time).
pub fn matches(presented: &str, expected: &str) -> bool {
    !expected.is_empty() && presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_their_secret_and_purpose() {
        let token = session_token("gks_secret");
        assert_eq!(token, session_token("gks_secret"));
        assert_ne!(token, session_token("gks_other"));
        assert_ne!(token, login_token("gks_secret"));
        assert!(!token.contains("secret") && token.len() == 43);
        assert!(matches(&token, &token) && !matches("", &token) && !matches(&token[1..], &token));
        assert!(!matches("", ""), "no expected token means no proof");
        assert_ne!(new_nonce(), new_nonce());
    }
}
