//! `gatekey login` and `gatekey logout`. Signing in through single sign-on follows RFC
//! 8252: the client listens on `127.0.0.1` on a random port, opens the sign-in URL in
//! the system browser (or prints it), and exchanges the one-time code the browser
//! brings back, with a verifier only it holds, for a session of its own.

use crate::credentials::{Owner, Stored};
use crate::failure::Failure;
use gatekey::{BrowserLogin, Client};
use std::io::{BufRead, IsTerminal};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How long the client waits for the browser.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(300);

/// A channel to `server`, or why the URL is unusable.
pub fn channel(server: &str) -> Result<tonic::transport::Channel, Failure> {
    if !(server.starts_with("https://") || server.starts_with("http://")) {
        return Err(Failure::Unreachable(format!(
            "`{server}` is not a server URL: give the core's gRPC address, such as https://vpn.example.com:9090"
        )));
    }
    gatekey::connect::channel(server, None).map_err(|e| Failure::Unreachable(format!("`{server}` is unusable: {e}")))
}

/// Signs in with a username and a password: the password is read from the terminal
/// without echo, or from the first line of standard input when it is not a terminal.
pub async fn with_password(owner: &Owner, server: &str, username: &str) -> Result<String, Failure> {
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Password for {username}: "))
            .map_err(|e| Failure::Local(format!("cannot read the password: {e}")))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::Local(format!("cannot read the password: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    let (client, login) = Client::login_over(channel(server)?, username, &password)
        .await
        .map_err(|error| Failure::from_sdk("signing in", error))?;
    keep(owner, server, login.session_token)?;
    welcome(&client).await
}

/// Signs in through single sign-on in the system browser.
pub async fn with_browser(owner: &Owner, server: &str, provider: &str, open_browser: bool) -> Result<String, Failure> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Failure::Local(format!("cannot listen on a loopback port for the browser: {e}")))?;
    let port = listener.local_addr().map_err(|e| Failure::Local(e.to_string()))?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let host = std::fs::read_to_string("/etc/hostname").map(|name| name.trim().to_owned()).unwrap_or_default();
    let client_name = if host.is_empty() { "gatekey".to_owned() } else { format!("gatekey on {host}") };
    let login = BrowserLogin::start(channel(server)?, provider, &redirect_uri, &client_name)
        .await
        .map_err(|error| Failure::from_sdk("starting the sign-in", error))?;
    eprintln!("Sign in in your browser; if it does not open, open this address:\n\n  {}\n", login.login_url);
    if open_browser {
        open(&login.login_url);
    }
    let code = tokio::time::timeout(BROWSER_TIMEOUT, wait_for_code(&listener, &login.state))
        .await
        .map_err(|_| Failure::SignedOut("no answer came from the browser within five minutes".into()))??;
    let (client, signed_in) = login.finish(&code).await.map_err(|error| Failure::from_sdk("signing in", error))?;
    keep(owner, server, signed_in.session_token)?;
    welcome(&client).await
}

/// Asks the desktop to open `url`; quietly does nothing where it cannot.
fn open(url: &str) {
    for opener in ["xdg-open", "open"] {
        let launched = std::process::Command::new(opener)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if launched.is_ok() {
            return;
        }
    }
}

/// Serves the loopback listener until the browser brings this sign-in's answer.
async fn wait_for_code(listener: &TcpListener, state: &str) -> Result<String, Failure> {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else { continue };
        let mut buffer = vec![0u8; 8192];
        let read = match tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer)).await {
            Ok(Ok(read)) => read,
            _ => continue,
        };
        let request = String::from_utf8_lossy(&buffer[..read]).into_owned();
        let target = request.lines().next().and_then(|line| line.split_whitespace().nth(1)).unwrap_or_default();
        let answer = callback_answer(target, state);
        let page = match &answer {
            Some(Ok(_)) => "Signed in. You can close this window and go back to the terminal.",
            Some(Err(_)) => "The sign-in did not succeed; the terminal says why. You can close this window.",
            None => "This is not the answer GateKey is waiting for.",
        };
        let body = format!("<!doctype html><meta charset=utf-8><title>GateKey</title><p>{page}</p>");
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = socket.write_all(response.as_bytes()).await;
        if let Some(answer) = answer {
            return answer;
        }
    }
}

/// What a request to the loopback listener says: this sign-in's code, its refusal, or
/// nothing (another request, or another sign-in's state).
fn callback_answer(target: &str, state: &str) -> Option<Result<String, Failure>> {
    let query = target.strip_prefix("/callback?")?;
    let pairs: Vec<(String, String)> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_owned(), decode(value)))
        .collect();
    let get = |name: &str| pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    if get("state") != Some(state) {
        return None;
    }
    match (get("code"), get("error")) {
        (Some(code), _) if !code.is_empty() => Some(Ok(code.to_owned())),
        (_, Some("access_denied")) => Some(Err(Failure::Refused("the sign-in was refused in the browser".into()))),
        (_, error) => Some(Err(Failure::Refused(format!("the sign-in failed: {}", error.unwrap_or("no code"))))),
    }
}

/// Percent-decoding of a query value.
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        index += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn keep(owner: &Owner, server: &str, token: String) -> Result<(), Failure> {
    owner.save(&Stored { server: server.to_owned(), token: Some(token) })
}

async fn welcome(client: &Client) -> Result<String, Failure> {
    let session = client.session().await.map_err(|error| Failure::from_sdk("reading the session", error))?;
    let user = session.user.unwrap_or_default();
    Ok(format!("Signed in as {} ({}).", user.username, user.email))
}

/// `gatekey logout`: ends the session on the server and forgets it here.
pub async fn logout(owner: &Owner) -> Result<String, Failure> {
    let Some(mut stored) = owner.load()? else { return Ok("Not signed in.".into()) };
    let Some(token) = stored.token.take() else { return Ok("Not signed in.".into()) };
    let ended = match Client::with_channel(channel(&stored.server)?, &token) {
        Ok(client) => client.logout().await,
        Err(error) => Err(error),
    };
    // The local token goes whatever the server says: an expired one is no loss.
    owner.save(&stored)?;
    match ended {
        Ok(()) => Ok("Signed out.".into()),
        Err(gatekey::Error::Status(status)) if status.code() == tonic::Code::Unauthenticated => {
            Ok("Signed out (the session had already ended on the server).".into())
        }
        Err(error) => Err(Failure::from_sdk("signing out on the server (the local session is gone)", error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_sign_ins_answer_is_taken() {
        assert_eq!(callback_answer("/callback?code=abc-_1&state=s1", "s1").unwrap().unwrap(), "abc-_1");
        assert!(callback_answer("/callback?code=abc&state=other", "s1").is_none(), "another sign-in's state");
        assert!(callback_answer("/favicon.ico", "s1").is_none());
        assert!(matches!(
            callback_answer("/callback?error=access_denied&state=s1", "s1"),
            Some(Err(Failure::Refused(_)))
        ));
        assert_eq!(decode("a%2Fb+c%zz"), "a/b c%zz");
    }
}
