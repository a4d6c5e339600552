//! A core for the dashboard benchmark: started in this process on loopback ports, with a
//! temporary SQLite database and no rate limits, and the admin signed in.

use clap::Parser;
use gatekey_core::config::{Cli, Command};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

const ADMIN_PASSWORD: &str = "bench-admin-password";

/// A running core and the admin's session.
pub struct InProcessCore {
    /// `http://127.0.0.1:<port>/api/v1`.
    pub api: String,
    /// The admin's session token.
    pub token: String,
    data_dir: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl InProcessCore {
    /// Starts the core and signs the admin in.
    pub async fn start() -> InProcessCore {
        let data_dir = std::env::temp_dir().join(format!("gatekey-bench-{}", std::process::id()));
        let (grpc_port, http_port) = (free_port(), free_port());
        let cli = Cli::parse_from([
            "gatekey-core".to_owned(),
            "serve".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--grpc-listen".into(),
            format!("127.0.0.1:{grpc_port}"),
            "--http-listen".into(),
            format!("127.0.0.1:{http_port}"),
            "--plain-http-cookies".into(),
            "--no-rate-limits".into(),
        ]);
        let Command::Serve(serve_args) = cli.command;
        std::fs::create_dir_all(&data_dir).unwrap();
        let store = gatekey_core::store::Store::open(&serve_args.database_url()).await.unwrap();
        gatekey_core::bootstrap::ensure_admin(&store, Some(ADMIN_PASSWORD)).await.unwrap();
        store.close().await;
        tokio::spawn(gatekey_core::server::serve(serve_args));

        let api = format!("http://127.0.0.1:{http_port}/api/v1");
        let client = reqwest::Client::new();
        for _ in 0..100 {
            let attempt = client
                .post(format!("{api}/auth/local/login"))
                .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
                .send()
                .await;
            if let Ok(response) = attempt {
                let body: Value = response.json().await.unwrap();
                let token = body["data"]["session_token"].as_str().unwrap().to_owned();
                return InProcessCore { api, token, data_dir };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the core did not start");
    }

    /// POSTs `body` to `path` under `/api/v1` as the admin; the answer must be a success.
    pub async fn post(&self, client: &reqwest::Client, path: &str, body: Value) -> Value {
        let response = client.post(format!("{}{path}", self.api)).bearer_auth(&self.token).json(&body).send().await;
        let response = response.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }
}

impl Drop for InProcessCore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Milliseconds, for printing.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The `q` quantile of sorted samples.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}
