//! Which process holds a catalogue run. A process that records, queues or trains a run holds
//! it by a lease in the catalogue ([`atelier_catalog::Catalog::take_run`]) under this process's
//! [`owner`] id, and renews it every [`HEARTBEAT`]; a lease not renewed for [`LEASE_TTL`] has
//! lost its process. An owner on this machine whose process no longer exists is known to be
//! gone at once ([`owner_is_gone`]), so a restarted app or a `--resume` need not wait.

use std::sync::OnceLock;
use std::time::Duration;

use atelier_catalog::{Catalog, now_millis};

/// How long a lease holds without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(60);
/// How often a holder renews its leases.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// This process's owner id: `HOST:PID:NONCE` (the nonce tells this process from an earlier
/// one that had the same pid).
pub fn owner() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(|| {
        let nonce: u32 = rand::random();
        format!("{}:{}:{nonce:08x}", host_name(), std::process::id())
    })
}

/// When a lease taken or renewed now runs out (UTC unix ms).
pub fn expiry() -> i64 {
    now_millis() + LEASE_TTL.as_millis() as i64
}

/// Whether the process `owner` names is known to be gone: it ran on this machine and its pid
/// no longer exists, or the pid is this process's but the id is not (an earlier process).
pub fn owner_is_gone(owner: &str) -> bool {
    if owner == self::owner() {
        return false;
    }
    let mut parts = owner.rsplitn(3, ':');
    let (Some(_nonce), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if host != host_name() {
        return false;
    }
    pid == std::process::id() || !process_exists(pid)
}

/// Renews `owner()`'s leases on the runs `runs()` names every [`HEARTBEAT`], forever (the
/// caller drops or aborts it); calls `lost` with the runs it no longer holds.
pub async fn keep_alive(catalog: Catalog, runs: impl Fn() -> Vec<i64>, lost: impl Fn(&[i64])) {
    let mut ticks = tokio::time::interval(HEARTBEAT);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let held = runs();
        if held.is_empty() {
            continue;
        }
        match catalog.renew_run_leases(owner(), &held, expiry()).await {
            Ok(gone) if !gone.is_empty() => lost(&gone),
            Ok(_) => {}
            Err(error) => tracing::warn!("could not renew the leases of runs {held:?}: {error}"),
        }
    }
}

fn host_name() -> String {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().replace(':', "_"))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    })
    .clone()
}

/// Whether a process with this pid exists (Linux: `/proc/PID`). Elsewhere, assume it does, so
/// only an expired lease frees a run.
fn process_exists(pid: u32) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_on_this_machine_are_gone_when_their_process_is() {
        let me = owner();
        assert!(!owner_is_gone(me));
        let host = host_name();
        // An earlier process with this very pid.
        assert!(owner_is_gone(&format!(
            "{host}:{}:deadbeef",
            std::process::id()
        )));
        // A pid far above any the kernel hands out.
        assert!(owner_is_gone(&format!("{host}:4294967290:00000000")));
        // A living process (pid 1), and owners on other machines, are not known to be gone.
        assert!(!owner_is_gone(&format!("{host}:1:00000000")));
        assert!(!owner_is_gone("another-host:4294967290:00000000"));
        assert!(!owner_is_gone("not an owner id"));
    }
}
