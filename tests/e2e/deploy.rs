//! What the repository ships for operators: the systemd units in `deploy/systemd`
//! (their command lines are accepted by the binaries they start, a refused agent is not
//! restarted, and systemd itself finds nothing wrong with them), and a README whose
//! links stay inside the repository.

use crate::kit::{binary, missing};
use std::path::PathBuf;
use std::process::Command;

fn unit(name: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// The value of `key=` in a unit (the last one, as systemd reads it).
fn setting<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().filter_map(|line| line.strip_prefix(key)?.strip_prefix('=')).next_back()
}

#[test]
fn the_units_start_what_the_binaries_accept_and_do_not_restart_refused_agents() {
    for (name, restart_prevented) in
        [("gatekey-core.service", false), ("gatekey-agent.service", true), ("gatekey-spoke.service", true)]
    {
        let (path, text) = unit(name);
        let exec = setting(&text, "ExecStart").unwrap_or_else(|| panic!("{name} has no ExecStart"));
        let mut words = exec.split_whitespace();
        let program = words.next().unwrap().rsplit('/').next().unwrap();
        // clap refuses unknown flags and bad values before it answers --help.
        let accepted = Command::new(binary(program)).args(words).arg("--help").output().unwrap();
        assert!(accepted.status.success(), "{name}: {exec}: {}", String::from_utf8_lossy(&accepted.stderr));
        // Exit code 3 is the agent's "refused for good" (agents::an_agent_refused_…).
        assert_eq!(setting(&text, "RestartPreventExitStatus") == Some("3"), restart_prevented, "{name}");
        assert_eq!(setting(&text, "Restart"), Some("on-failure"), "{name}");
        assert_eq!(setting(&text, "StateDirectoryMode"), Some("0700"), "{name}");

        let Ok(verify) = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&path).output() else {
            missing("systemd-analyze");
            continue;
        };
        // The binaries are not installed under /usr/local/bin here; anything else counts.
        let complaints: Vec<_> = String::from_utf8_lossy(&verify.stderr)
            .lines()
            .filter(|line| !line.contains("/usr/local/bin/") && !line.trim().is_empty())
            .map(str::to_owned)
            .collect();
        assert!(complaints.is_empty(), "{name}: {complaints:?}");
    }
}

#[test]
fn the_readme_links_only_to_files_in_the_repository() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let targets = readme.split("](").skip(1).filter_map(|rest| rest.split(')').next());
    let files: Vec<_> = targets.filter(|target| !target.starts_with('#') && !target.contains("://")).collect();
    assert!(files.contains(&"docs/api-overview.md"), "the README links the API overview: {files:?}");
    for target in files {
        let path = root.join(target);
        assert!(!target.starts_with("..") && path.exists(), "README links {target}, which is not in the repository");
    }
}
