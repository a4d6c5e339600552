//! Where the client keeps the server and the session: `gatekey/session.json` in the
//! user's config directory (`$XDG_CONFIG_HOME`, else `~/.config`), the directory 0700
//! and the file 0600. Under `sudo`, the invoking user's directory is used, so that
//! `sudo gatekey connect` finds the session `gatekey login` stored.

use crate::failure::Failure;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

/// What is stored.
#[derive(Clone, Serialize, Deserialize)]
pub struct Stored {
    /// The core's gRPC URL.
    pub server: String,
    /// The session token; never printed.
    pub token: Option<String>,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

/// The person the client acts for: who ran it (not root, under `sudo`).
#[derive(Debug, Clone)]
pub struct Owner {
    /// Their user id.
    pub uid: u32,
    /// Their home directory.
    pub home: PathBuf,
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    std::fs::metadata("/proc/self").map(|meta| meta.uid()).unwrap_or(u32::MAX)
}

/// The user's home directory from `/etc/passwd`.
fn home_of(uid: u32) -> Option<PathBuf> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 6 && fields[2].parse() == Ok(uid)).then(|| PathBuf::from(fields[5]))
    })
}

impl Owner {
    /// Who ran the client.
    pub fn current() -> Owner {
        let sudo_uid = std::env::var("SUDO_UID").ok().and_then(|uid| uid.parse().ok()).filter(|_| effective_uid() == 0);
        match sudo_uid {
            Some(uid) => Owner { uid, home: home_of(uid).unwrap_or_else(|| PathBuf::from("/root")) },
            None => {
                let home = std::env::var_os("HOME").map(PathBuf::from).or_else(|| home_of(effective_uid()));
                Owner { uid: effective_uid(), home: home.unwrap_or_else(|| PathBuf::from("/")) }
            }
        }
    }

    /// The config directory.
    fn config_dir(&self) -> PathBuf {
        let xdg = std::env::var_os("XDG_CONFIG_HOME").filter(|_| std::env::var_os("SUDO_UID").is_none());
        xdg.map(PathBuf::from).unwrap_or_else(|| self.home.join(".config")).join("gatekey")
    }

    fn session_file(&self) -> PathBuf {
        self.config_dir().join("session.json")
    }

    /// What is stored, if anything.
    pub fn load(&self) -> Result<Option<Stored>, Failure> {
        let path = self.session_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Failure::Local(format!("{} is damaged ({e}); run `gatekey login` again", path.display()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(Failure::Local(format!("cannot read {}: {error}", path.display()))),
        }
    }

    /// Stores `stored` (0600, in a 0700 directory, owned by this user).
    pub fn save(&self, stored: &Stored) -> Result<(), Failure> {
        let dir = self.config_dir();
        let local = |what: &str, e: std::io::Error| Failure::Local(format!("cannot {what} {}: {e}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(|e| local("create", e))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| local("secure", e))?;
        let path = self.session_file();
        let temporary = dir.join(".session.json.new");
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(|e| local("write in", e))?;
        let text = serde_json::to_vec_pretty(stored).map_err(|e| Failure::Local(e.to_string()))?;
        file.write_all(&text).map_err(|e| local("write in", e))?;
        drop(file);
        std::fs::rename(&temporary, &path).map_err(|e| local("write in", e))?;
        if effective_uid() == 0 && self.uid != 0 {
            // Written by `sudo gatekey …`: the file and directory stay the user's.
            for owned in [&dir, &path] {
                std::os::unix::fs::chown(owned, Some(self.uid), None).map_err(|e| local("hand over", e))?;
            }
        }
        Ok(())
    }

    /// The stored server and session, or why there is none.
    pub fn session(&self, server: Option<&str>) -> Result<(String, String), Failure> {
        let stored = self.load()?;
        let token = stored.as_ref().and_then(|stored| stored.token.clone());
        let server = match (server, &stored) {
            (Some(server), _) => server.to_owned(),
            (None, Some(stored)) => stored.server.clone(),
            (None, None) => return Err(Failure::SignedOut("not signed in: run `gatekey login --server URL`".into())),
        };
        match token {
            Some(token) => Ok((server, token)),
            None => Err(Failure::SignedOut("not signed in: run `gatekey login`".into())),
        }
    }
}
