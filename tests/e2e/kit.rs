//! The test kit: boots the real `gatekey-core` binary on free ports with a temporary
//! data directory and a fresh database (SQLite, or PostgreSQL from the test setup),
//! and hands tests HTTP and gRPC clients.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

/// Password of the bootstrap admin in every test core.
pub const ADMIN_PASSWORD: &str = "test-admin-password";
/// Password given to users the tests create.
pub const USER_PASSWORD: &str = "user-password-123";

/// Whether a missing prerequisite must fail the run (set by `.ci/run`).
pub fn strict() -> bool {
    std::env::var("GATEKEY_TEST_STRICT").is_ok_and(|v| v == "1")
}

/// Reports a missing prerequisite: fails under strict mode, otherwise skips loudly.
pub fn missing(what: &str) {
    assert!(!strict(), "GATEKEY_TEST_STRICT=1 but {what} is not available");
    eprintln!("\n!!!!!!!! SKIPPED: {what} is not available; run scripts/test.sh to set it up !!!!!!!!\n");
}

/// Path of a workspace binary built next to this test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target profile directory");
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory under the system temp dir.
    pub fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("gatekey-test-{label}-{}", random_suffix()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    format!("{:016x}", hasher.finish())
}

/// A database backend for a test core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the core's data directory.
    Sqlite,
    /// A fresh database in the test PostgreSQL cluster.
    Postgres,
}

/// The backends available: SQLite always, PostgreSQL when the test setup started one.
pub fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Sqlite];
    if std::env::var("GATEKEY_TEST_POSTGRES_URL").is_ok() {
        backends.push(Backend::Postgres);
    } else {
        missing("PostgreSQL (GATEKEY_TEST_POSTGRES_URL)");
    }
    backends
}

/// The URL of a new, empty database for `backend`.
pub async fn fresh_database_url(backend: Backend, data_dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", data_dir.join("gatekey.db").display()),
        Backend::Postgres => {
            let admin_url = std::env::var("GATEKEY_TEST_POSTGRES_URL").expect("GATEKEY_TEST_POSTGRES_URL");
            let name = format!("gk_{}", random_suffix());
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&admin_url).await.expect("connect to test PostgreSQL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
            pool.close().await;
            let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base).to_owned();
            format!("{base}/{name}")
        }
    }
}

/// A running `gatekey-core` and clients for it.
pub struct Core {
    /// Base URL of the in-process REST facade (`http://127.0.0.1:PORT`), if served.
    pub http_base: String,
    /// Address of the gRPC listener.
    pub grpc_address: String,
    /// The node's id (new at each start).
    pub node_id: String,
    database_url: String,
    http: reqwest::Client,
    process: Child,
    data_dir: TempDir,
}

impl Core {
    /// Starts a core on `backend` with the in-process facade.
    pub async fn start(backend: Backend) -> Core {
        Core::start_with(backend, &[]).await
    }

    /// Starts a core with extra `serve` arguments.
    pub async fn start_with(backend: Backend, extra_args: &[&str]) -> Core {
        let data_dir = TempDir::new("core");
        let database_url = fresh_database_url(backend, data_dir.path()).await;
        Core::launch(data_dir, database_url, extra_args).await
    }

    /// Starts another node of the same cluster: the same database and secret key, its
    /// own data directory.
    pub async fn join(&self, extra_args: &[&str]) -> Core {
        let key = self.data_dir.path().join("secret.key");
        let mut args = vec!["--secret-key-file", key.to_str().expect("UTF-8 path")];
        args.extend_from_slice(extra_args);
        Core::launch(TempDir::new("core"), self.database_url.clone(), &args).await
    }

    /// Stops this core and starts a new one on the same data directory and database.
    pub async fn restart(self) -> Core {
        self.restart_with(&[]).await
    }

    /// Like [`Core::restart`], with extra `serve` arguments for the new process.
    pub async fn restart_with(self, extra_args: &[&str]) -> Core {
        self.stop().await.start(extra_args).await
    }

    /// Kills the process (SIGKILL), as a crash or a lost machine would.
    pub async fn kill(mut self) {
        self.process.kill().await.expect("kill the core");
    }

    /// Stops the process as an operator would, with SIGTERM, keeping its data directory
    /// and database; fails unless it exits cleanly (status 0) within 10 s.
    pub async fn stop(self) -> StoppedCore {
        let Core { mut process, data_dir, database_url, .. } = self;
        let status = terminate(&mut process).await;
        assert!(status.success(), "the core did not exit cleanly on SIGTERM: {status}");
        StoppedCore { data_dir, database_url }
    }

    /// The command that runs a core on `data_dir` and `database_url`.
    pub fn command(data_dir: &Path, database_url: &str, extra_args: &[&str]) -> Command {
        let mut command = Command::new(binary("gatekey-core"));
        command
            .args(["serve", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--plain-http-cookies"])
            .args(extra_args)
            .arg("--data-dir")
            .arg(data_dir)
            .env("DATABASE_URL", database_url)
            .env("GATEKEY_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(data_dir.join("core.log")).map(Stdio::from).unwrap_or_else(|_| Stdio::inherit()),
            )
            .kill_on_drop(true);
        command
    }

    async fn launch(data_dir: TempDir, database_url: String, extra_args: &[&str]) -> Core {
        let command = Core::command(data_dir.path(), &database_url, extra_args);
        Core::launch_command(command, data_dir, database_url).await
    }

    /// Starts a core from a prepared [`Core::command`] (for extra environment).
    pub async fn launch_command(mut command: Command, data_dir: TempDir, database_url: String) -> Core {
        let mut process = command.spawn().expect("spawn gatekey-core");
        let ready = ready_line(&mut process, "gatekey-core ready").await;
        let field = |name: &str| {
            ready.split_whitespace().find_map(|part| part.strip_prefix(name)).expect("ready line field").to_owned()
        };
        Core {
            http_base: format!("http://{}", field("http=")),
            grpc_address: field("grpc="),
            node_id: field("node="),
            database_url,
            http: reqwest::Client::new(),
            process,
            data_dir,
        }
    }

    /// What the core has logged so far (at `warn` and above).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("core.log")).unwrap_or_default()
    }

    /// The core's data directory and database URL.
    pub fn storage(&self) -> (&Path, &str) {
        (self.data_dir.path(), &self.database_url)
    }

    /// Every text value in every table of the core's database, for at-rest checks.
    pub async fn dump_database(&self) -> String {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.database_url).await.unwrap();
        let mut dump = String::new();
        for table in [
            "certificate_authority",
            "vpn_configs",
            "gateways",
            "certificates",
            "sessions",
            "api_keys",
            "users",
            "vpn_sessions",
        ] {
            let rows =
                sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}"))).fetch_all(&pool).await.unwrap();
            for row in rows {
                use sqlx::Row;
                for index in 0..row.len() {
                    if let Ok(Some(text)) = row.try_get::<Option<String>, _>(index) {
                        dump.push_str(&text);
                        dump.push('\n');
                    }
                }
            }
        }
        pool.close().await;
        dump
    }

    /// A gRPC channel to the core.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc_address)).unwrap().connect().await.unwrap()
    }

    /// Sends a JSON request to `/api/v1{path}` with an optional bearer token.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}/api/v1{path}", self.http_base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from_response(request.send().await.expect("HTTP request")).await
    }

    /// `GET` with a token.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// `POST` JSON with a token.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// `PUT` JSON with a token.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    /// `DELETE` with a token.
    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Signs in and returns the session token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let reply = self
            .call(Method::POST, "/auth/local/login", None, Some(json!({"username": username, "password": password})))
            .await
            .expect(StatusCode::OK);
        reply.body["data"]["session_token"].as_str().expect("session token").to_owned()
    }

    /// The bootstrap admin's session token.
    pub async fn admin_token(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await
    }

    /// Creates a local user (as `admin_token`) and returns its id and session token.
    pub async fn create_user(&self, admin_token: &str, username: &str, groups: &[&str]) -> (String, String) {
        let reply = self
            .post(
                "/admin/users",
                admin_token,
                json!({"username": username, "email": format!("{username}@example.com"),
                       "password": USER_PASSWORD, "groups": groups}),
            )
            .await
            .expect(StatusCode::CREATED);
        let id = reply.body["data"]["id"].as_str().unwrap().to_owned();
        (id, self.login(username, USER_PASSWORD).await)
    }
}

/// A stopped core's state, ready to start again.
pub struct StoppedCore {
    data_dir: TempDir,
    database_url: String,
}

impl StoppedCore {
    /// Starts a core on the kept state.
    pub async fn start(self, extra_args: &[&str]) -> Core {
        Core::launch(self.data_dir, self.database_url, extra_args).await
    }
}

/// Sends SIGTERM to `process` and waits (at most 10 s) for it to exit.
pub async fn terminate(process: &mut Child) -> std::process::ExitStatus {
    let pid = process.id().expect("the process is running").to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().await.expect("run kill");
    assert!(sent.success(), "kill -TERM {pid} failed");
    tokio::time::timeout(Duration::from_secs(10), process.wait())
        .await
        .expect("the process did not exit within 10 s of SIGTERM")
        .expect("wait for the process")
}

/// Reads the child's stdout until a line starting with `prefix`, then keeps draining it.
pub async fn ready_line(process: &mut Child, prefix: &str) -> String {
    let stdout = process.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if line.starts_with(prefix) {
                return line;
            }
        }
        panic!("process exited before printing `{prefix}`");
    })
    .await
    .unwrap_or_else(|_| panic!("no `{prefix}` line within 30 s"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    line
}

/// An HTTP answer with its JSON body.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// JSON body (Null when empty or not JSON).
    pub body: Value,
}

impl Reply {
    /// Reads a response into a reply.
    pub async fn from_response(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        Reply { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    }

    /// Asserts the status and returns self.
    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Reply {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        self
    }

    /// Asserts a status and error code in the seed's error shape; returns the message.
    #[track_caller]
    pub fn expect_error(self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        assert_eq!(self.body["error"]["code"], code, "unexpected code; body: {}", self.body);
        let message = self.body["error"]["message"].as_str().expect("error message").to_owned();
        assert!(!message.is_empty());
        message
    }
}
