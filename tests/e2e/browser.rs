//! A real browser for the console tests: Debian's headless Chromium driven over
//! WebDriver (its own chromedriver per test, on a loopback port), downloading into a
//! directory of the test's, saving a screenshot of each page it is told to under
//! `target/console-screenshots/`.

use crate::kit::{TempDir, missing};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A browser session and the chromedriver behind it.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// Where downloads land.
    pub downloads: TempDir,
    _driver: tokio::process::Child,
}

fn program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name))).find(|p| p.is_file())
}

impl Browser {
    /// Starts Chromium at a `width`×`height` window, or `None` (loudly skipped) when it
    /// is not installed.
    pub async fn start(width: u32, height: u32) -> Option<Browser> {
        Browser::start_with(width, height, true).await
    }

    /// Starts Chromium with JavaScript turned off.
    pub async fn start_without_javascript() -> Option<Browser> {
        Browser::start_with(1280, 900, false).await
    }

    async fn start_with(width: u32, height: u32, javascript: bool) -> Option<Browser> {
        let (Some(driver), Some(chromium)) =
            (program(&["chromedriver"]), program(&["chromium", "chromium-browser", "google-chrome"]))
        else {
            missing("chromium and chromedriver (Debian: chromium, chromium-driver)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let downloads = TempDir::new("downloads");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--disable-extensions", "--lang=en-GB",
                         format!("--window-size={width},{height}")],
                "prefs": {
                    "download.default_directory": downloads.path(),
                    "download.prompt_for_download": false,
                    "safebrowsing.enabled": false,
                    "profile.managed_default_content_settings.javascript": if javascript { 1 } else { 2 }
                }
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        let url = format!("http://127.0.0.1:{port}");
        let mut client = None;
        for _ in 0..100 {
            match builder.connect(&url).await {
                Ok(connected) => {
                    client = Some(connected);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let client = client.expect("chromedriver did not start within 10 s");
        client.set_window_size(width, height).await.unwrap();
        Some(Browser { client, downloads, _driver: driver })
    }

    /// Opens `url`.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The element `css` selects, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no `{css}` on the page within 10 s: {error}"))
    }

    /// Whether `css` selects anything now.
    pub async fn has(&self, css: &str) -> bool {
        !self.client.find_all(Locator::Css(css)).await.unwrap().is_empty()
    }

    /// The text of the element `css` selects (looked up again if htmx swapped it out
    /// meanwhile).
    pub async fn text(&self, css: &str) -> String {
        for _ in 0..20 {
            match self.find(css).await.text().await {
                Ok(text) => return text,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("`{css}` kept being replaced while read");
    }

    /// The page's visible text.
    pub async fn page_text(&self) -> String {
        self.text("body").await
    }

    /// Types `value` into the field `css` selects (after clearing it).
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Waits (up to 10 s) until the page's text contains `words`.
    pub async fn wait_for_text(&self, words: &str) {
        for _ in 0..100 {
            if self.page_text().await.contains(words) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never said `{words}`; it says:\n{}", self.page_text().await);
    }

    /// Waits (up to 10 s) until the text of `css` is `expected`.
    pub async fn wait_for_text_of(&self, css: &str, expected: &str) {
        let mut seen = String::new();
        for _ in 0..100 {
            seen = self.text(css).await;
            if seen == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("`{css}` never read `{expected}`; it reads `{seen}`");
    }

    /// The path of the page shown now.
    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Waits (up to 15 s) for a finished download; answers its path.
    pub async fn downloaded(&self) -> PathBuf {
        for _ in 0..150 {
            let finished = std::fs::read_dir(self.downloads.path())
                .unwrap()
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .find(|path| {
                    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
                    !name.starts_with('.') && !name.ends_with(".crdownload")
                });
            if let Some(path) = finished {
                return path;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("nothing was downloaded within 15 s");
    }

    /// Saves a screenshot of the page as `target/console-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the browser session.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
