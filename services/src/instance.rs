//! The instance identity: the name under which one `fapiao serve` process holds its upload and
//! archive claims and the reconcile and alerting leases.
//!
//! It is stable across restarts of the same installation and distinct for every replica, so a
//! restarted instance knows which claims were its own — their holder is gone, since it is that
//! holder — and takes them back at once, while claims of other replicas still wait out their lease.
//! It must therefore never be the process id or anything random: a restart would look like a
//! stranger and its own work would wait a full lease.
//!
//! Configured with `instance_id` (in Kubernetes, the pod name through `FAPIAO__INSTANCE_ID`). The
//! default is the host name and the configured listen address: two processes on one host cannot
//! listen on one address, and neither changes when the same installation restarts. The data
//! folder was the other candidate, but replicas sharing a PostgreSQL often share a working folder
//! too, while their listen addresses must differ.

use std::fmt;
use std::net::SocketAddr;

/// Longest identity accepted; it is stored beside every claim.
const MAX_LEN: usize = 200;

/// The name this process holds its claims and leases under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceId(String);

impl InstanceId {
    /// The configured identity, or the host name with the configured `listen` address. A
    /// configured identity must be 1 to 200 characters with no control characters.
    pub fn resolve(configured: Option<&str>, listen: SocketAddr) -> anyhow::Result<Self> {
        match configured {
            Some(id) => Self::parse(id),
            None => Ok(Self(format!("{}/{listen}", host_name()))),
        }
    }

    fn parse(id: &str) -> anyhow::Result<Self> {
        let id = id.trim();
        anyhow::ensure!(
            !id.is_empty(),
            "instance_id is empty: set a name per replica or leave it out for the default"
        );
        anyhow::ensure!(
            id.chars().count() <= MAX_LEN,
            "instance_id is longer than {MAX_LEN} characters"
        );
        anyhow::ensure!(
            !id.chars().any(char::is_control),
            "instance_id holds a control character"
        );
        Ok(Self(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kernel's host name (a pod's name in Kubernetes), read without `unsafe`; the usual
/// environment variables where `/proc` is missing; `localhost` when nothing says.
fn host_name() -> String {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    from_kernel
        .into_iter()
        .chain(
            ["HOSTNAME", "COMPUTERNAME"]
                .map(|name| std::env::var(name).ok())
                .into_iter()
                .flatten(),
        )
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(text: &str) -> SocketAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn the_default_is_stable_and_tells_replicas_on_one_host_apart() {
        let a = InstanceId::resolve(None, listen("0.0.0.0:50051")).unwrap();
        let again = InstanceId::resolve(None, listen("0.0.0.0:50051")).unwrap();
        let b = InstanceId::resolve(None, listen("0.0.0.0:50052")).unwrap();
        assert_eq!(a, again, "a restart keeps the identity");
        assert_ne!(a, b, "two replicas on one host differ");
        assert!(a.as_str().ends_with("/0.0.0.0:50051"), "{a}");
        assert!(!a.as_str().starts_with('/'), "a host name comes first: {a}");
    }

    #[test]
    fn the_environment_sets_it_like_every_option() {
        let env = [("FAPIAO__INSTANCE_ID".to_owned(), "fapiao-2".to_owned())];
        let config = crate::config::Config::load(None, env).unwrap();
        assert_eq!(config.instance_id.as_deref(), Some("fapiao-2"));
        assert_eq!(crate::config::Config::default().instance_id, None);
    }

    #[test]
    fn a_configured_identity_wins_and_is_checked() {
        let pod = InstanceId::resolve(Some(" fapiao-0 "), listen("0.0.0.0:50051")).unwrap();
        assert_eq!(pod.as_str(), "fapiao-0");
        assert!(InstanceId::resolve(Some("  "), listen("0.0.0.0:1")).is_err());
        assert!(InstanceId::resolve(Some("a\nb"), listen("0.0.0.0:1")).is_err());
        assert!(InstanceId::resolve(Some(&"x".repeat(201)), listen("0.0.0.0:1")).is_err());
        assert!(InstanceId::resolve(Some(&"实".repeat(200)), listen("0.0.0.0:1")).is_ok());
    }
}
