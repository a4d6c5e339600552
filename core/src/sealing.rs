//! Encryption of secrets at rest (the CA key, rendered configs, tls-crypt keys) with
//! AES-256-GCM under one key from `GATEKEY_SECRET_KEY` or a key file. Each sealed
//! value is bound to a context string (which row it belongs to), so a ciphertext
//! moved to another row does not open.

use crate::error::{CoreError, CoreResult};
use crate::secrets::random_bytes;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::path::Path;

/// Version tag of the sealed format: `v1.` + base64url(nonce ‖ ciphertext ‖ tag).
const SEALED_PREFIX: &str = "v1.";

/// Seals and opens secrets with the deployment's at-rest key.
pub struct SecretBox {
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box for a 32-byte key.
    pub fn new(key: &[u8; 32]) -> CoreResult<SecretBox> {
        let unbound = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| CoreError::Internal("cannot initialise AES-256-GCM".into()))?;
        Ok(SecretBox { key: LessSafeKey::new(unbound) })
    }

    /// The box for this deployment: the base64 key in `from_env` if given, otherwise the
    /// key in `key_file`, which is created (mode 0600) with a random key if missing.
    pub fn load(from_env: Option<&str>, key_file: &Path) -> CoreResult<SecretBox> {
        let encoded = match from_env {
            Some(encoded) => encoded.trim().to_owned(),
            None if key_file.exists() => std::fs::read_to_string(key_file)
                .map_err(|e| CoreError::Internal(format!("cannot read {}: {e}", key_file.display())))?
                .trim()
                .to_owned(),
            None => {
                let encoded = STANDARD.encode(random_bytes::<32>());
                write_private_file(key_file, &encoded)?;
                tracing::info!(path = %key_file.display(), "created a new at-rest encryption key");
                encoded
            }
        };
        let key: [u8; 32] =
            STANDARD.decode(&encoded).ok().and_then(|bytes| bytes.try_into().ok()).ok_or_else(|| {
                CoreError::InvalidArgument(
                    "the at-rest secret key must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)".into(),
                )
            })?;
        SecretBox::new(&key)
    }

    /// Encrypts `plaintext` for the row named by `context`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> CoreResult<String> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| CoreError::Internal("encryption failed".into()))?;
        let mut framed = nonce_bytes.to_vec();
        framed.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(framed)))
    }

    /// Decrypts a value sealed for `context`; fails if the key or the context differ.
    pub fn open(&self, context: &str, sealed: &str) -> CoreResult<Vec<u8>> {
        let undecryptable = || {
            CoreError::Internal(format!(
                "cannot decrypt `{context}`: the at-rest key differs from the one that sealed it \
                 (every core node must share GATEKEY_SECRET_KEY or the key file)"
            ))
        };
        let framed = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|body| URL_SAFE_NO_PAD.decode(body).ok())
            .filter(|framed| framed.len() > NONCE_LEN)
            .ok_or_else(undecryptable)?;
        let (nonce, ciphertext) = framed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| undecryptable())?;
        let mut buffer = ciphertext.to_vec();
        let plaintext =
            self.key.open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer).map_err(|_| undecryptable())?;
        Ok(plaintext.to_vec())
    }

    /// Like [`SecretBox::open`], for text.
    pub fn open_text(&self, context: &str, sealed: &str) -> CoreResult<String> {
        String::from_utf8(self.open(context, sealed)?)
            .map_err(|_| CoreError::Internal(format!("`{context}` is not text")))
    }
}

/// Writes a file readable by its owner only.
fn write_private_file(path: &Path, contents: &str) -> CoreResult<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file =
        options.open(path).map_err(|e| CoreError::Internal(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| CoreError::Internal(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let sealer = SecretBox::new(&[7; 32]).unwrap();
        let sealed = sealer.seal("config:cfg-1", b"-----BEGIN PRIVATE KEY-----").unwrap();
        assert!(!sealed.contains("PRIVATE"));
        assert_eq!(sealer.open("config:cfg-1", &sealed).unwrap(), b"-----BEGIN PRIVATE KEY-----");
        assert!(sealer.open("config:cfg-2", &sealed).is_err(), "bound to its context");
        assert!(SecretBox::new(&[8; 32]).unwrap().open("config:cfg-1", &sealed).is_err(), "bound to its key");
        assert_ne!(sealed, sealer.seal("config:cfg-1", b"-----BEGIN PRIVATE KEY-----").unwrap(), "fresh nonces");
        assert!(sealer.open("config:cfg-1", "v1.bm90IGEgdmFsaWQgYm94").is_err());
    }

    #[test]
    fn key_files_are_created_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("gatekey-sealing-{}", hex::encode(random_bytes::<6>())));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret.key");
        let first = SecretBox::load(None, &path).unwrap();
        let sealed = first.seal("x", b"y").unwrap();
        let again = SecretBox::load(None, &path).unwrap();
        assert_eq!(again.open("x", &sealed).unwrap(), b"y");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(SecretBox::load(Some("too-short"), &path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
