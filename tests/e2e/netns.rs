//! Network namespaces the tests create for themselves, linked by veth pairs with
//! addresses the tests assign; all removed on drop. Needs root and iproute2.

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

fn run(args: &[&str]) {
    let status = std::process::Command::new(args[0]).args(&args[1..]).stderr(Stdio::inherit()).status().unwrap();
    assert!(status.success(), "command failed: {args:?}");
}

/// A set of namespaces named by role, e.g. `gateway`, `client`.
pub struct Lab {
    tag: String,
    namespaces: Vec<(String, String)>,
    links: usize,
}

impl Lab {
    /// Creates one namespace per role, with loopback up; `tag` (at most 4 characters)
    /// keeps names unique between tests.
    pub fn create(tag: &str, roles: &[&str]) -> Lab {
        let tag = format!("{tag}{}", std::process::id() % 1000);
        let namespaces: Vec<_> = roles.iter().map(|role| ((*role).to_owned(), format!("gk-{tag}-{role}"))).collect();
        for (_, ns) in &namespaces {
            let _ = std::process::Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
            run(&["ip", "netns", "add", ns]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        Lab { tag, namespaces, links: 0 }
    }

    /// The namespace of a role.
    pub fn ns(&self, role: &str) -> &str {
        self.namespaces.iter().find(|(r, _)| r == role).map(|(_, ns)| ns.as_str()).expect("known role")
    }

    /// Joins `a` (a role, or `None` for the test's own namespace) and role `b` with a
    /// veth pair, giving each end an address such as `10.61.1.1/24`.
    pub fn link(&mut self, a: Option<&str>, a_address: &str, b: &str, b_address: &str) {
        self.links += 1;
        let (a_if, b_if) = (format!("v{}{}a", self.tag, self.links), format!("v{}{}b", self.tag, self.links));
        let b_ns = self.ns(b).to_owned();
        match a {
            Some(a) => {
                let a_ns = self.ns(a).to_owned();
                run(&[
                    "ip", "link", "add", &a_if, "netns", &a_ns, "type", "veth", "peer", "name", &b_if, "netns", &b_ns,
                ]);
                run(&["ip", "-n", &a_ns, "addr", "add", a_address, "dev", &a_if]);
                run(&["ip", "-n", &a_ns, "link", "set", &a_if, "up"]);
            }
            None => {
                run(&["ip", "link", "add", &a_if, "type", "veth", "peer", "name", &b_if, "netns", &b_ns]);
                run(&["ip", "addr", "add", a_address, "dev", &a_if]);
                run(&["ip", "link", "set", &a_if, "up"]);
            }
        }
        run(&["ip", "-n", &b_ns, "addr", "add", b_address, "dev", &b_if]);
        run(&["ip", "-n", &b_ns, "link", "set", &b_if, "up"]);
    }

    /// Runs a command inside a role's namespace and asserts it succeeds.
    pub fn exec(&self, role: &str, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", self.ns(role)];
        full.extend_from_slice(args);
        run(&full);
    }

    /// Starts a program inside a role's namespace; killed on drop.
    pub fn spawn(&self, role: &str, program: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", self.ns(role), program])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// Runs a command inside a role's namespace and reports whether it succeeded.
    pub async fn succeeds(&self, role: &str, program: &str, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", self.ns(role), program])
            .args(args)
            .output()
            .await
            .unwrap()
            .status
            .success()
    }

    /// Whether one ping from `role` to `address` is answered within a second.
    pub async fn pings(&self, role: &str, address: &str) -> bool {
        self.succeeds(role, "ping", &["-c", "1", "-W", "1", address]).await
    }

    /// Whether `address` answers a ping from `role` within about ten seconds: a tunnel's
    /// routes and the gateway's firewall settle just after the client reports it is up.
    pub async fn reaches(&self, role: &str, address: &str) -> bool {
        for _ in 0..10 {
            if self.pings(role, address).await {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        false
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends inside it, and so their peers.
        for (_, ns) in &self.namespaces {
            let _ = std::process::Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A lab process that is asked to stop (SIGTERM) when dropped, so it can stop the
/// processes it started itself; killed if it has not exited within five seconds.
pub struct Graceful(pub Child);

impl Drop for Graceful {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            for _ in 0..50 {
                if matches!(self.0.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        let _ = self.0.start_kill();
    }
}

/// Waits until `path` contains `needle`, or `timeout` passes.
pub async fn wait_for_text(path: &Path, needle: &str, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle)) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
