//! Per-client nftables enforcement.
//!
//! One table (`inet gatekey` by default) holds a verdict map from a client's VPN
//! address to a per-client chain of `accept` rules. The forward chain sends every
//! new packet coming out of the tunnel through the map; whatever no rule accepts
//! is dropped, and traffic that does not touch the tunnel is left alone.
//!
//! Changes are applied as one `nft -f -` batch, which the kernel commits
//! atomically: either every client is updated or none is. With masquerading on, a
//! postrouting chain hides clients behind the host's address as they leave the tunnel.
//!
//! The table is the agent's alone: [`Firewall::is_intact`] tells whether it still holds
//! what was applied, so that a table someone flushed or deleted is reinstalled and
//! reapplied in full instead of silently leaving the tunnel unfiltered.

use gatekey::v1::FirewallRule;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// What a finished command reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Whether the command exited with status 0.
    pub success: bool,
    /// Exit code, `None` when killed by a signal.
    pub code: Option<i32>,
    /// Captured standard output.
    pub stdout: String,
    /// Captured standard error.
    pub stderr: String,
}

/// Future returned by [`CommandRunner::run`].
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = io::Result<CommandOutput>> + Send + 'a>>;

/// Runs external programs; abstracted so tests can record calls instead of running `nft`.
pub trait CommandRunner: Send + Sync {
    /// Runs `program` with `args`, feeding `stdin` if given, and captures its output.
    fn run<'a>(&'a self, program: &'a str, args: &'a [&'a str], stdin: Option<&'a str>) -> RunFuture<'a>;
}

/// Runs programs on this host with `tokio::process`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run<'a>(&'a self, program: &'a str, args: &'a [&'a str], stdin: Option<&'a str>) -> RunFuture<'a> {
        Box::pin(async move {
            let mut child = tokio::process::Command::new(program)
                .args(args)
                .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let pipe = child.stdin.take();
            // Feed stdin while collecting output, so a chatty child cannot deadlock us on a full pipe.
            let feed = async move {
                if let (Some(text), Some(mut pipe)) = (stdin, pipe) {
                    pipe.write_all(text.as_bytes()).await?;
                    // Dropping the pipe closes it so `nft -f -` sees end of input.
                    drop(pipe);
                }
                io::Result::Ok(())
            };
            let (fed, output) = tokio::join!(feed, child.wait_with_output());
            let output = output?;
            // A child that fails early stops reading (broken pipe); its stderr is the better error.
            if output.status.success() {
                fed?;
            }
            Ok(CommandOutput {
                success: output.status.success(),
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        })
    }
}

/// Why the firewall could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// A table or interface name that is not safe to place in an nft script.
    #[error("invalid {what} name {name:?}")]
    InvalidName {
        /// Which name was rejected (`table` or `interface`).
        what: &'static str,
        /// The rejected name.
        name: String,
    },
    /// `nft` could not be started.
    #[error("cannot run nft: {0}")]
    Spawn(#[from] io::Error),
    /// `nft` rejected the batch; nothing was changed.
    #[error("nft failed (exit {code:?}): {stderr}")]
    Nft {
        /// Exit code of nft.
        code: Option<i32>,
        /// What nft printed on standard error.
        stderr: String,
    },
}

/// What [`Firewall::apply`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Clients that got a new chain and map element.
    pub added: usize,
    /// Clients whose rules were replaced.
    pub changed: usize,
    /// Clients whose chain and map element were deleted.
    pub removed: usize,
    /// Clients whose conntrack entries could not be flushed (logged; rules are applied anyway).
    pub conntrack_failed: usize,
}

/// Per-client firewall, remembering what it last applied so updates touch only changed clients.
#[derive(Debug)]
pub struct Firewall<R> {
    runner: R,
    table: String,
    interface: String,
    /// Tunnel traffic may leave only back through the tunnel (a mesh hub's clients
    /// reach spokes, nothing on the hub's own networks).
    confined: bool,
    /// Clients' traffic leaving the tunnel is masqueraded.
    masquerade: bool,
    applied: BTreeMap<Ipv4Addr, Vec<FirewallRule>>,
}

/// Default table name.
pub const DEFAULT_TABLE: &str = "gatekey";

impl<R: CommandRunner> Firewall<R> {
    /// A firewall on table `inet gatekey` for tunnel interface `interface` (e.g. `tun0`).
    pub fn new(runner: R, interface: &str) -> Result<Self, FirewallError> {
        Self::with_table(runner, DEFAULT_TABLE, interface)
    }

    /// A firewall on table `inet {table}`; both names are validated because they are
    /// interpolated into nft scripts.
    pub fn with_table(runner: R, table: &str, interface: &str) -> Result<Self, FirewallError> {
        let table_ok = !table.is_empty()
            && table.len() <= 64
            && table.starts_with(|c: char| c.is_ascii_alphabetic())
            && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !table_ok {
            return Err(FirewallError::InvalidName { what: "table", name: table.to_owned() });
        }
        // Linux interface names: at most 15 bytes; we allow a conservative charset.
        let iface_ok = !interface.is_empty()
            && interface.len() <= 15
            && interface.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !iface_ok {
            return Err(FirewallError::InvalidName { what: "interface", name: interface.to_owned() });
        }
        Ok(Self {
            runner,
            table: table.to_owned(),
            interface: interface.to_owned(),
            confined: false,
            masquerade: false,
            applied: BTreeMap::new(),
        })
    }

    /// Masquerades clients' traffic leaving the tunnel when `masquerade` (`--nat`), for
    /// protected networks without a route back to the VPN pool.
    pub fn masquerading(mut self, masquerade: bool) -> Self {
        self.masquerade = masquerade;
        self
    }

    /// Confines tunnel traffic to the tunnel when `confined` (a mesh hub): a client's
    /// allowed destinations are reachable only through other tunnel peers (spokes), so
    /// nothing leaks onto the hub's own networks while a spoke is away.
    pub fn confined_to_tunnel(mut self, confined: bool) -> Self {
        self.confined = confined;
        self
    }

    /// The rules currently applied, by client VPN address.
    pub fn applied(&self) -> &BTreeMap<Ipv4Addr, Vec<FirewallRule>> {
        &self.applied
    }

    /// The command runner (lets tests inspect recorded calls).
    pub fn runner(&self) -> &R {
        &self.runner
    }

    /// The batch [`Firewall::install`] runs.
    pub fn install_batch(&self) -> String {
        let (t, i) = (&self.table, &self.interface);
        let confine = match self.confined {
            true => format!("add rule inet {t} forward iifname \"{i}\" oifname != \"{i}\" drop\n"),
            false => String::new(),
        };
        let masquerade = match self.masquerade {
            true => format!(
                "add chain inet {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
                 add rule inet {t} postrouting iifname \"{i}\" oifname != \"{i}\" masquerade\n"
            ),
            false => String::new(),
        };
        // `add` then `delete` succeeds whether or not the table exists, so the batch is idempotent.
        format!(
            "add table inet {t}\n\
             delete table inet {t}\n\
             add table inet {t}\n\
             add map inet {t} clients {{ type ipv4_addr : verdict; }}\n\
             add chain inet {t} forward {{ type filter hook forward priority filter; policy accept; }}\n\
             add rule inet {t} forward iifname \"{i}\" ct state established,related accept\n\
             add rule inet {t} forward oifname \"{i}\" ct state established,related accept\n\
             {confine}\
             add rule inet {t} forward iifname \"{i}\" ip saddr vmap @clients\n\
             add rule inet {t} forward iifname \"{i}\" drop\n\
             add rule inet {t} forward oifname \"{i}\" drop\n\
             add chain inet {t} input {{ type filter hook input priority filter; policy accept; }}\n\
             add rule inet {t} input iifname \"{i}\" ct state established,related accept\n\
             add rule inet {t} input iifname \"{i}\" drop\n\
             {masquerade}"
        )
    }

    /// Whether the kernel's table still holds what this firewall installed and applied:
    /// the clients' verdict map with one element per applied client, the forward rule
    /// that consults it, a hub's confinement and masquerading if on. Failing to list it
    /// counts as not intact.
    pub async fn is_intact(&self) -> bool {
        let listing = match self.runner.run("nft", &["list", "table", "inet", &self.table], None).await {
            Ok(output) if output.success => output.stdout,
            _ => return false,
        };
        let clients = listing.matches(": jump client_").count();
        listing.contains("vmap @clients")
            && clients == self.applied.len()
            && (!self.masquerade || listing.contains("masquerade"))
            && (!self.confined || listing.contains(&format!("oifname != \"{}\" drop", self.interface)))
    }

    /// (Re)creates the table from scratch, dropping every client; the applied state is cleared.
    /// Also the way to recover if the kernel state drifted (e.g. someone flushed the ruleset).
    pub async fn install(&mut self) -> Result<(), FirewallError> {
        let batch = self.install_batch();
        self.run_nft(&batch).await?;
        self.applied.clear();
        Ok(())
    }

    /// Brings the firewall to `desired` with one atomic batch that touches only clients whose
    /// rules differ, then cuts the existing flows of changed and removed clients.
    /// On error the applied state is unchanged.
    pub async fn apply(
        &mut self,
        desired: BTreeMap<Ipv4Addr, Vec<FirewallRule>>,
    ) -> Result<ApplyReport, FirewallError> {
        let t = &self.table;
        let mut batch = String::new();
        let mut report = ApplyReport::default();
        let mut cut = Vec::new();
        for (addr, rules) in &desired {
            let chain = chain_name(*addr);
            match self.applied.get(addr) {
                Some(old) if old == rules => continue,
                Some(_) => {
                    report.changed += 1;
                    cut.push(*addr);
                    let _ = writeln!(batch, "flush chain inet {t} {chain}");
                    push_rules(&mut batch, t, &chain, rules);
                }
                None => {
                    report.added += 1;
                    let _ = writeln!(batch, "add chain inet {t} {chain}");
                    push_rules(&mut batch, t, &chain, rules);
                    let _ = writeln!(batch, "add element inet {t} clients {{ {addr} : jump {chain} }}");
                }
            }
        }
        for addr in self.applied.keys().filter(|a| !desired.contains_key(a)) {
            let chain = chain_name(*addr);
            report.removed += 1;
            cut.push(*addr);
            // The element goes first (it references the chain); flushing before deleting keeps
            // older kernels, which refuse to delete a non-empty chain, happy.
            let _ = writeln!(batch, "delete element inet {t} clients {{ {addr} }}");
            let _ = writeln!(batch, "flush chain inet {t} {chain}");
            let _ = writeln!(batch, "delete chain inet {t} {chain}");
        }
        if batch.is_empty() {
            return Ok(report);
        }
        self.run_nft(&batch).await?;
        self.applied = desired;
        // The forward chain accepts established flows before consulting the map, so flows opened
        // under the old rules would survive; deleting their conntrack entries cuts them.
        for addr in cut {
            if !self.flush_conntrack(addr).await {
                report.conntrack_failed += 1;
            }
        }
        Ok(report)
    }

    async fn run_nft(&self, batch: &str) -> Result<(), FirewallError> {
        let output = self.runner.run("nft", &["-f", "-"], Some(batch)).await?;
        if output.success {
            Ok(())
        } else {
            Err(FirewallError::Nft { code: output.code, stderr: output.stderr.trim().to_owned() })
        }
    }

    /// Deletes the conntrack entries sourced at `addr`; false (after a warning) on failure.
    async fn flush_conntrack(&self, addr: Ipv4Addr) -> bool {
        let text = addr.to_string();
        match self.runner.run("conntrack", &["-D", "-s", &text], None).await {
            Ok(out) if out.success => true,
            // conntrack exits 1 when there was nothing to delete.
            Ok(out) if out.stderr.contains("0 flow entries have been deleted") => true,
            Ok(out) => {
                tracing::warn!(%addr, code = ?out.code, stderr = %out.stderr.trim(), "conntrack flush failed");
                false
            }
            Err(error) => {
                tracing::warn!(%addr, %error, "cannot run conntrack");
                false
            }
        }
    }
}

/// Name of the chain holding `addr`'s rules, e.g. `client_10_78_0_2`.
pub fn chain_name(addr: Ipv4Addr) -> String {
    let [a, b, c, d] = addr.octets();
    format!("client_{a}_{b}_{c}_{d}")
}

fn push_rules(batch: &mut String, table: &str, chain: &str, rules: &[FirewallRule]) {
    for rule in rules {
        if let Some(body) = render_rule(rule) {
            let _ = writeln!(batch, "add rule inet {table} {chain} {body}");
        }
    }
}

/// Renders one allow rule as an nft rule body, or `None` (with a warning) if it is invalid.
/// Output is built only from parsed numbers and fixed keywords, never from the input text,
/// so a hostile destination or protocol cannot inject nft syntax.
pub fn render_rule(rule: &FirewallRule) -> Option<String> {
    let Some(dest) = parse_destination(&rule.destination) else {
        tracing::warn!(destination = %rule.destination, "skipping rule: destination is not an IPv4 address or CIDR");
        return None;
    };
    let proto = match rule.protocol.to_ascii_lowercase().as_str() {
        "any" => return Some(format!("ip daddr {dest} accept")),
        "icmp" => return Some(format!("ip daddr {dest} meta l4proto icmp accept")),
        "tcp" => "tcp",
        "udp" => "udp",
        _ => {
            tracing::warn!(protocol = %rule.protocol, "skipping rule: unknown protocol");
            return None;
        }
    };
    if rule.port_from == 0 {
        return Some(format!("ip daddr {dest} meta l4proto {proto} accept"));
    }
    // proto3 leaves an unset port_to at 0: read that as a single port rather than dropping the rule.
    let to = if rule.port_to == 0 { rule.port_from } else { rule.port_to };
    if rule.port_from > to || to > 65535 {
        tracing::warn!(port_from = rule.port_from, port_to = rule.port_to, "skipping rule: bad port range");
        return None;
    }
    if rule.port_from == to {
        Some(format!("ip daddr {dest} {proto} dport {to} accept"))
    } else {
        Some(format!("ip daddr {dest} {proto} dport {}-{to} accept", rule.port_from))
    }
}

/// Parses `a.b.c.d` or `a.b.c.d/len` and renders it canonically with host bits cleared
/// (so nft never sees a prefix it might reject).
fn parse_destination(text: &str) -> Option<String> {
    let (addr, len) = match text.split_once('/') {
        Some((addr, len)) => {
            // u8 parsing alone would accept "+8"; require plain digits.
            if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (addr.parse::<Ipv4Addr>().ok()?, len.parse::<u8>().ok()?)
        }
        None => (text.parse::<Ipv4Addr>().ok()?, 32),
    };
    if len > 32 {
        return None;
    }
    if len == 32 {
        return Some(addr.to_string());
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    Some(format!("{}/{len}", Ipv4Addr::from(u32::from(addr) & mask)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// One recorded invocation: program, args, stdin.
    type Call = (String, Vec<String>, Option<String>);

    /// Records calls; nft succeeds unless `fail_nft` is set.
    #[derive(Default, Clone)]
    struct Mock {
        calls: Arc<Mutex<Vec<Call>>>,
        fail_nft: bool,
        /// What `nft list table` prints.
        listing: String,
    }

    impl Mock {
        fn take(&self) -> Vec<Call> {
            std::mem::take(&mut *self.calls.lock().unwrap())
        }
    }

    impl CommandRunner for Mock {
        fn run<'a>(&'a self, program: &'a str, args: &'a [&'a str], stdin: Option<&'a str>) -> RunFuture<'a> {
            self.calls.lock().unwrap().push((
                program.to_owned(),
                args.iter().map(|s| s.to_string()).collect(),
                stdin.map(str::to_owned),
            ));
            let out = match program {
                "nft" if args.first() == Some(&"list") => {
                    CommandOutput { success: true, code: Some(0), stdout: self.listing.clone(), ..Default::default() }
                }
                "nft" if self.fail_nft => CommandOutput {
                    code: Some(1),
                    stderr: "Error: No such file or directory\n".into(),
                    ..Default::default()
                },
                // Mimic conntrack's "nothing to delete" exit, which must count as success.
                "conntrack" => CommandOutput {
                    code: Some(1),
                    stderr: "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n".into(),
                    ..Default::default()
                },
                _ => CommandOutput { success: true, code: Some(0), ..Default::default() },
            };
            Box::pin(async move { Ok(out) })
        }
    }

    fn rule(destination: &str, protocol: &str, port_from: u32, port_to: u32) -> FirewallRule {
        FirewallRule { destination: destination.into(), protocol: protocol.into(), port_from, port_to }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn nft_batches(calls: &[Call]) -> Vec<String> {
        calls.iter().filter(|c| c.0 == "nft").map(|c| c.2.clone().unwrap()).collect()
    }

    fn conntrack_targets(calls: &[Call]) -> Vec<String> {
        calls.iter().filter(|c| c.0 == "conntrack").map(|c| c.1.join(" ")).collect()
    }

    #[test]
    fn renders_rules() {
        assert_eq!(render_rule(&rule("10.0.0.0/8", "any", 0, 0)).unwrap(), "ip daddr 10.0.0.0/8 accept");
        assert_eq!(render_rule(&rule("10.1.2.3", "icmp", 0, 0)).unwrap(), "ip daddr 10.1.2.3 meta l4proto icmp accept");
        assert_eq!(
            render_rule(&rule("10.1.2.3/32", "udp", 0, 0)).unwrap(),
            "ip daddr 10.1.2.3 meta l4proto udp accept"
        );
        assert_eq!(render_rule(&rule("10.1.2.3", "tcp", 80, 80)).unwrap(), "ip daddr 10.1.2.3 tcp dport 80 accept");
        assert_eq!(render_rule(&rule("10.1.2.3", "TCP", 443, 0)).unwrap(), "ip daddr 10.1.2.3 tcp dport 443 accept");
        assert_eq!(
            render_rule(&rule("192.168.7.9/24", "udp", 8000, 8080)).unwrap(),
            "ip daddr 192.168.7.0/24 udp dport 8000-8080 accept"
        );
        assert_eq!(render_rule(&rule("1.2.3.4/0", "any", 0, 0)).unwrap(), "ip daddr 0.0.0.0/0 accept");
    }

    #[test]
    fn skips_invalid_and_hostile_rules() {
        for dest in [
            "10.0.0.0/8; flush ruleset",
            "10.0.0.0/8\nflush ruleset",
            "10.0.0.1 accept; drop",
            "example.com",
            "::1",
            "fd00::/8",
            "10.0.0.0/33",
            "10.0.0.0/+8",
            "10.0.0.0/",
            "",
            "010.0.0.1",
        ] {
            assert_eq!(render_rule(&rule(dest, "any", 0, 0)), None, "{dest:?}");
        }
        assert_eq!(render_rule(&rule("10.0.0.1", "sctp", 0, 0)), None);
        assert_eq!(render_rule(&rule("10.0.0.1", "tcp accept; flush ruleset", 0, 0)), None);
        assert_eq!(render_rule(&rule("10.0.0.1", "tcp", 90, 80)), None);
        assert_eq!(render_rule(&rule("10.0.0.1", "tcp", 80, 70000)), None);
        assert_eq!(render_rule(&rule("10.0.0.1", "udp", 70000, 70000)), None);
    }

    #[test]
    fn validates_names() {
        assert!(Firewall::new(Mock::default(), "tun0").is_ok());
        assert!(Firewall::new(Mock::default(), "tun0\" accept").is_err());
        assert!(Firewall::new(Mock::default(), "averyveryverylongname").is_err());
        assert!(Firewall::with_table(Mock::default(), "gk; flush", "tun0").is_err());
    }

    #[tokio::test]
    async fn install_runs_idempotent_batch_and_clears_state() {
        let mut fw = Firewall::new(Mock::default(), "tun1").unwrap();
        fw.apply(BTreeMap::from([(ip("10.78.0.2"), vec![])])).await.unwrap();
        fw.runner().take();
        fw.install().await.unwrap();
        let calls = fw.runner().take();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].1, ["-f", "-"]);
        let expected = "add table inet gatekey\n\
            delete table inet gatekey\n\
            add table inet gatekey\n\
            add map inet gatekey clients { type ipv4_addr : verdict; }\n\
            add chain inet gatekey forward { type filter hook forward priority filter; policy accept; }\n\
            add rule inet gatekey forward iifname \"tun1\" ct state established,related accept\n\
            add rule inet gatekey forward oifname \"tun1\" ct state established,related accept\n\
            add rule inet gatekey forward iifname \"tun1\" ip saddr vmap @clients\n\
            add rule inet gatekey forward iifname \"tun1\" drop\n\
            add rule inet gatekey forward oifname \"tun1\" drop\n\
            add chain inet gatekey input { type filter hook input priority filter; policy accept; }\n\
            add rule inet gatekey input iifname \"tun1\" ct state established,related accept\n\
            add rule inet gatekey input iifname \"tun1\" drop\n";
        assert_eq!(calls[0].2.as_deref(), Some(expected));
        assert!(fw.applied().is_empty());
    }

    #[test]
    fn a_hub_keeps_tunnel_traffic_in_the_tunnel() {
        let hub = Firewall::new(Mock::default(), "tun1").unwrap().confined_to_tunnel(true).install_batch();
        let confine = "add rule inet gatekey forward iifname \"tun1\" oifname != \"tun1\" drop\n";
        let (before, after) = hub.split_once(confine).expect("the confinement rule");
        assert!(before.ends_with("established,related accept\n") && after.contains("vmap @clients"), "{hub}");
        let gateway = Firewall::new(Mock::default(), "tun1").unwrap().install_batch();
        assert!(!gateway.contains("oifname != "), "{gateway}");
    }

    #[test]
    fn masquerading_hides_clients_leaving_the_tunnel() {
        let nat = Firewall::new(Mock::default(), "tun1").unwrap().masquerading(true).install_batch();
        assert!(
            nat.contains("add chain inet gatekey postrouting { type nat hook postrouting priority srcnat;"),
            "{nat}"
        );
        assert!(nat.ends_with("add rule inet gatekey postrouting iifname \"tun1\" oifname != \"tun1\" masquerade\n"));
        let plain = Firewall::new(Mock::default(), "tun1").unwrap().install_batch();
        assert!(!plain.contains("masquerade"), "{plain}");
    }

    #[tokio::test]
    async fn a_table_that_lost_what_was_applied_is_not_intact() {
        let listing = |clients: usize, masquerade: bool| {
            let elements: Vec<String> =
                (0..clients).map(|n| format!("10.8.0.{} : jump client_10_8_0_{}", n + 2, n + 2)).collect();
            format!(
                "table inet gatekey {{\n map clients {{ elements = {{ {} }} }}\n chain forward {{ iifname \"tun0\" ip saddr vmap @clients }}\n{}}}",
                elements.join(", "),
                if masquerade { " chain postrouting { masquerade }\n" } else { "" }
            )
        };
        let mut fw = Firewall::new(Mock::default(), "tun0").unwrap().masquerading(true);
        fw.apply(BTreeMap::from([(ip("10.8.0.2"), vec![rule("10.1.0.0/24", "any", 0, 0)])])).await.unwrap();
        fw.runner.listing = listing(1, true);
        assert!(fw.is_intact().await);
        fw.runner.listing = listing(0, true);
        assert!(!fw.is_intact().await, "a flushed map");
        fw.runner.listing = listing(1, false);
        assert!(!fw.is_intact().await, "masquerading gone");
        fw.runner.listing = String::new();
        assert!(!fw.is_intact().await, "the table gone");
    }

    #[tokio::test]
    async fn apply_touches_only_changed_clients() {
        let mut fw = Firewall::new(Mock::default(), "tun0").unwrap();
        let web = rule("10.0.0.0/8", "tcp", 80, 80);
        let dns = rule("10.0.0.53", "udp", 53, 53);
        let first = BTreeMap::from([
            (ip("10.78.0.2"), vec![web.clone()]),
            (ip("10.78.0.3"), vec![dns.clone()]),
            (ip("10.78.0.4"), vec![]),
        ]);
        let report = fw.apply(first.clone()).await.unwrap();
        assert_eq!(report, ApplyReport { added: 3, ..Default::default() });
        let calls = fw.runner().take();
        // New clients have no flows under old rules, so no conntrack calls.
        assert_eq!(calls.len(), 1);
        assert_eq!(
            nft_batches(&calls)[0],
            "add chain inet gatekey client_10_78_0_2\n\
             add rule inet gatekey client_10_78_0_2 ip daddr 10.0.0.0/8 tcp dport 80 accept\n\
             add element inet gatekey clients { 10.78.0.2 : jump client_10_78_0_2 }\n\
             add chain inet gatekey client_10_78_0_3\n\
             add rule inet gatekey client_10_78_0_3 ip daddr 10.0.0.53 udp dport 53 accept\n\
             add element inet gatekey clients { 10.78.0.3 : jump client_10_78_0_3 }\n\
             add chain inet gatekey client_10_78_0_4\n\
             add element inet gatekey clients { 10.78.0.4 : jump client_10_78_0_4 }\n"
        );
        assert_eq!(fw.applied(), &first);

        // .2 unchanged, .3 changed, .4 removed, .5 added.
        let second = BTreeMap::from([
            (ip("10.78.0.2"), vec![web.clone()]),
            (ip("10.78.0.3"), vec![dns.clone(), rule("10.0.0.1", "icmp", 0, 0)]),
            (ip("10.78.0.5"), vec![rule("10.0.0.0/8; flush ruleset", "any", 0, 0)]),
        ]);
        let report = fw.apply(second.clone()).await.unwrap();
        assert_eq!(report, ApplyReport { added: 1, changed: 1, removed: 1, conntrack_failed: 0 });
        let calls = fw.runner().take();
        let batches = nft_batches(&calls);
        assert_eq!(batches.len(), 1);
        assert_eq!(
            batches[0],
            "flush chain inet gatekey client_10_78_0_3\n\
             add rule inet gatekey client_10_78_0_3 ip daddr 10.0.0.53 udp dport 53 accept\n\
             add rule inet gatekey client_10_78_0_3 ip daddr 10.0.0.1 meta l4proto icmp accept\n\
             add chain inet gatekey client_10_78_0_5\n\
             add element inet gatekey clients { 10.78.0.5 : jump client_10_78_0_5 }\n\
             delete element inet gatekey clients { 10.78.0.4 }\n\
             flush chain inet gatekey client_10_78_0_4\n\
             delete chain inet gatekey client_10_78_0_4\n"
        );
        assert!(!batches[0].contains("10.78.0.2"));
        assert!(!batches[0].contains("ruleset"));
        // The batch runs before the flows are cut.
        assert_eq!(calls[0].0, "nft");
        assert_eq!(conntrack_targets(&calls), ["-D -s 10.78.0.3", "-D -s 10.78.0.4"]);
        assert_eq!(fw.applied(), &second);

        // Same state again: nothing runs at all.
        let report = fw.apply(second).await.unwrap();
        assert_eq!(report, ApplyReport::default());
        assert!(fw.runner().take().is_empty());
    }

    #[tokio::test]
    async fn failing_nft_keeps_applied_state() {
        let mock = Mock::default();
        let mut fw = Firewall::new(mock.clone(), "tun0").unwrap();
        let first = BTreeMap::from([(ip("10.78.0.2"), vec![rule("10.0.0.1", "any", 0, 0)])]);
        fw.apply(first.clone()).await.unwrap();

        let mut failing = Firewall::new(Mock { fail_nft: true, ..mock }, "tun0").unwrap();
        failing.applied = first.clone();
        failing.runner().take();
        let err = failing.apply(BTreeMap::new()).await.unwrap_err();
        assert!(matches!(&err, FirewallError::Nft { code: Some(1), stderr } if stderr.contains("No such file")));
        assert_eq!(failing.applied(), &first);
        // No conntrack flush when the rules did not change.
        assert!(conntrack_targets(&failing.runner().take()).is_empty());
        assert!(failing.install().await.is_err());
        assert_eq!(failing.applied(), &first);
    }

    #[tokio::test]
    async fn system_runner_feeds_stdin_and_reports_exit() {
        let out = SystemRunner.run("cat", &[], Some("hello")).await.unwrap();
        assert!(out.success);
        assert_eq!(out.stdout, "hello");
        let out = SystemRunner.run("sh", &["-c", "echo oops >&2; exit 3"], None).await.unwrap();
        assert!(!out.success);
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stderr, "oops\n");
    }
}
