//! Network namespaces the tests create for themselves: a pair joined by a veth link
//! with addresses the test assigns, removed on drop. Needs root and iproute2.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// Whether this machine can run namespace tests; reports why not otherwise.
pub fn available(tools: &[&str]) -> bool {
    let root = std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    let tun = Path::new("/dev/net/tun").exists();
    let missing_tool = tools.iter().find(|tool| {
        !std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    match (root, tun, missing_tool) {
        (true, true, None) => true,
        (false, _, _) => {
            crate::kit::missing("root (for network namespaces)");
            false
        }
        (_, false, _) => {
            crate::kit::missing("/dev/net/tun");
            false
        }
        (_, _, Some(tool)) => {
            crate::kit::missing(tool);
            false
        }
    }
}

/// Two namespaces, `left` and `right`, linked by veth: left has `10.{net}.0.1/24`,
/// right has `10.{net}.0.2/24`.
pub struct LinkedPair {
    /// Namespace names.
    pub left: String,
    /// Namespace names.
    pub right: String,
    /// The left side's address.
    pub left_address: String,
    /// The right side's address.
    pub right_address: String,
}

fn run(args: &[&str]) {
    let status = std::process::Command::new(args[0]).args(&args[1..]).stderr(Stdio::inherit()).status().unwrap();
    assert!(status.success(), "command failed: {args:?}");
}

impl LinkedPair {
    /// Creates the pair; `tag` keeps names unique (at most 6 characters), `net` picks the subnet.
    pub fn create(tag: &str, net: u8) -> LinkedPair {
        let suffix = format!("{tag}{}", std::process::id() % 10000);
        let (left, right) = (format!("gkl-{suffix}"), format!("gkr-{suffix}"));
        let (left_if, right_if) = (format!("gkl{suffix}"), format!("gkr{suffix}"));
        let pair =
            LinkedPair { left_address: format!("10.{net}.0.1"), right_address: format!("10.{net}.0.2"), left, right };
        for ns in [&pair.left, &pair.right] {
            let _ = std::process::Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
            run(&["ip", "netns", "add", ns]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        run(&[
            "ip",
            "link",
            "add",
            &left_if,
            "netns",
            &pair.left,
            "type",
            "veth",
            "peer",
            "name",
            &right_if,
            "netns",
            &pair.right,
        ]);
        run(&["ip", "-n", &pair.left, "addr", "add", &format!("{}/24", pair.left_address), "dev", &left_if]);
        run(&["ip", "-n", &pair.right, "addr", "add", &format!("{}/24", pair.right_address), "dev", &right_if]);
        run(&["ip", "-n", &pair.left, "link", "set", &left_if, "up"]);
        run(&["ip", "-n", &pair.right, "link", "set", &right_if, "up"]);
        pair
    }

    /// Starts `program args…` inside namespace `ns`; killed on drop.
    pub fn spawn(ns: &str, program: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// Runs a command inside `ns` and reports whether it succeeded.
    pub async fn succeeds(ns: &str, program: &str, args: &[&str]) -> bool {
        Command::new("ip").args(["netns", "exec", ns, program]).args(args).output().await.unwrap().status.success()
    }
}

impl Drop for LinkedPair {
    fn drop(&mut self) {
        for ns in [&self.left, &self.right] {
            let _ = std::process::Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Waits until `path` contains `needle`, or `timeout` passes; returns whether it did.
pub async fn wait_for_text(path: &Path, needle: &str, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
