//! Signing in through the system browser, for native clients (RFC 8252): the client
//! listens on a loopback port, [`BrowserLogin::start`] gets the URL the user opens, and
//! once the browser has brought the one-time code to the listener,
//! [`BrowserLogin::finish`] exchanges it, with the verifier only this client holds, for
//! a session.

use crate::Client;
use crate::client::Error;
use crate::v1;
use crate::v1::auth_service_client::AuthServiceClient;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

/// A sign-in under way: the URL to open, and the secrets to finish it with.
pub struct BrowserLogin {
    channel: Channel,
    verifier: String,
    /// The URL the user opens in a browser.
    pub login_url: String,
    /// The value the loopback listener must get back with the code (anything else is
    /// not this sign-in's answer).
    pub state: String,
}

impl std::fmt::Debug for BrowserLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserLogin").field("login_url", &self.login_url).finish_non_exhaustive()
    }
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    // The OS generator does not fail on supported systems; if it did, the sign-in
    // would still need the user's consent and could not be finished by another process
    // without reading this one's memory.
    let _ = getrandom::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl BrowserLogin {
    /// Starts a sign-in at the core behind `channel` through identity provider
    /// `provider` (empty: the only one), bringing the code to `redirect_uri`
    /// (`http://127.0.0.1:<port>/…`); `client_name` is shown on the consent page.
    pub async fn start(
        channel: Channel,
        provider: &str,
        redirect_uri: &str,
        client_name: &str,
    ) -> Result<BrowserLogin, Error> {
        let verifier = random();
        let state = random();
        let request = v1::StartClientLoginRequest {
            provider: provider.into(),
            redirect_uri: redirect_uri.into(),
            code_challenge: URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            state: state.clone(),
            client_name: client_name.into(),
        };
        let started = AuthServiceClient::new(channel.clone()).start_client_login(request).await?.into_inner();
        Ok(BrowserLogin { channel, verifier, login_url: started.login_url, state })
    }

    /// Exchanges the code the browser brought for a session; answers a client using
    /// it, and the session token (to keep for later runs).
    pub async fn finish(self, code: &str) -> Result<(Client, v1::LoginResponse), Error> {
        let request = v1::ExchangeClientCodeRequest { code: code.into(), code_verifier: self.verifier };
        let login = AuthServiceClient::new(self.channel.clone()).exchange_client_code(request).await?.into_inner();
        Ok((Client::with_channel(self.channel, &login.session_token)?, login))
    }
}
