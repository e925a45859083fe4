//! Login limits: how many password checks may run at once, and how fast each user name, client
//! address and known device may guess.
//!
//! - **Checks at once.** An argon2 check holds 19 MiB for ~20 ms; checks run on a fixed set of
//!   [`LoginPolicy::concurrent_checks`] threads of their own (not the runtime's blocking pool,
//!   whose ever-new threads each kept a 19 MiB block in their own allocator arena), and a login
//!   that cannot get one within [`LoginPolicy::check_wait`] is answered 503, so a flood costs
//!   time, never memory.
//! - **Per client address**: after [`LoginPolicy::max_failures_per_address`] failures within
//!   the window, the address is refused until its oldest failure leaves the window.
//! - **Per user name**, for clients that are not a known device of that user: the first
//!   [`LoginPolicy::free_failures_per_name`] failures cost nothing; after that each try must
//!   wait twice as long as the one before since the last failure (from
//!   [`LoginPolicy::first_backoff`] up to [`LoginPolicy::max_backoff`]). A name is slowed down,
//!   never locked: its owner waits at most the longest backoff.
//! - **Known devices**: a browser where the user logged in before carries a signed device
//!   cookie; its logins skip the per-name backoff (an attacker guessing that user's password
//!   elsewhere cannot lock them out), up to [`LoginPolicy::max_failures_per_device`] failures.
//!
//! Every attempt is reserved atomically *before* its password is checked and counted as a
//! failure unless it succeeds, so concurrent guesses cannot slip past the limits.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atelier_catalog::{Catalog, LoginTally};
use tokio::sync::Semaphore;

use crate::auth::verify_password_in;
use crate::error::WebError;

/// Logins waiting for a password check beyond which new ones are refused at once (503).
const MAX_WAITING_CHECKS: usize = 256;

/// Tallies kept per kind before idle ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// The login limits (see the module documentation).
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    /// How long a failed login counts.
    pub window: Duration,
    /// Failures per user name, from clients that are not a known device of that user, before
    /// each further try has to wait.
    pub free_failures_per_name: usize,
    /// The first wait after the free failures; each further failure doubles it...
    pub first_backoff: Duration,
    /// ... up to this.
    pub max_backoff: Duration,
    /// Failures per client address (whatever the names) before the address is refused.
    pub max_failures_per_address: usize,
    /// Failures per known-device cookie before it counts as an unknown client.
    pub max_failures_per_device: usize,
    /// Password checks that may run at once.
    pub concurrent_checks: usize,
    /// How long a login waits for a free password check before it is answered 503.
    pub check_wait: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            window: Duration::from_secs(15 * 60),
            free_failures_per_name: 5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_failures_per_address: 20,
            max_failures_per_device: 5,
            concurrent_checks: std::thread::available_parallelism().map_or(2, |n| n.get()),
            check_wait: Duration::from_secs(5),
        }
    }
}

/// Who is trying to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginKey {
    pub name: String,
    /// The client's address (an IPv6 address is counted by its /64 network).
    pub address: IpAddr,
    /// The verified device cookie's id, when the client is a known device of `name`.
    pub device: Option<String>,
}

#[derive(Debug, Default)]
struct Tally {
    failures: VecDeque<Instant>,
    /// Failures other app instances recorded in the catalogue, oldest first, as of the last
    /// attempt (see [`LoginLimiter::shared`]).
    remote: Vec<Instant>,
    in_flight: usize,
}

impl Tally {
    fn forget_before(&mut self, oldest: Option<Instant>) {
        while let (Some(first), Some(oldest)) = (self.failures.front(), oldest) {
            if *first > oldest {
                break;
            }
            self.failures.pop_front();
        }
        if let Some(oldest) = oldest {
            self.remote.retain(|at| *at > oldest);
        }
    }

    /// Failures here and elsewhere.
    fn failed(&self) -> usize {
        self.failures.len() + self.remote.len()
    }

    /// Failures plus attempts under way: what the next attempt is counted against.
    fn load(&self) -> usize {
        self.failed() + self.in_flight
    }

    fn oldest(&self) -> Option<Instant> {
        self.failures
            .front()
            .into_iter()
            .chain(self.remote.first())
            .min()
            .copied()
    }

    fn newest(&self) -> Option<Instant> {
        self.failures
            .back()
            .into_iter()
            .chain(self.remote.last())
            .max()
            .copied()
    }

    fn is_idle(&self) -> bool {
        self.failures.is_empty() && self.remote.is_empty() && self.in_flight == 0
    }
}

/// Failures the other app instances recorded, per kind, for one attempt.
#[derive(Debug, Default)]
struct Remote {
    name: Vec<Instant>,
    address: Vec<Instant>,
    device: Vec<Instant>,
}

/// The catalogue that app instances share failures through, and this instance's id there.
struct Shared {
    catalog: Catalog,
    instance: String,
}

#[derive(Debug, Default)]
struct Tallies {
    names: HashMap<String, Tally>,
    addresses: HashMap<IpAddr, Tally>,
    devices: HashMap<String, Tally>,
}

/// A password check for the checker threads: the PHC hash, the password, where to answer.
type CheckJob = (String, String, tokio::sync::oneshot::Sender<bool>);

/// Counts failed logins and hands out password checks (see the module documentation).
pub struct LoginLimiter {
    policy: LoginPolicy,
    tallies: Mutex<Tallies>,
    checks: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// Feeds the checker threads; they end when it is dropped.
    checkers: Mutex<std::sync::mpsc::Sender<CheckJob>>,
    shared: Option<Shared>,
}

impl LoginLimiter {
    /// A limiter that counts the failures of this process only.
    pub fn new(policy: LoginPolicy) -> LoginLimiter {
        let threads = policy.concurrent_checks.max(1);
        LoginLimiter {
            checks: Arc::new(Semaphore::new(threads)),
            checkers: Mutex::new(spawn_checkers(threads)),
            policy,
            tallies: Mutex::new(Tallies::default()),
            waiting: AtomicUsize::new(0),
            shared: None,
        }
    }

    /// A limiter that also counts the failures every other app instance on `catalog` saw: it
    /// records its own there, reads the others' before each attempt ([`Self::reserve_shared`])
    /// and clears a name's failures everywhere when its owner logs in. Attempts under way on
    /// another instance are not seen, only their outcome.
    pub fn shared(policy: LoginPolicy, catalog: Catalog) -> LoginLimiter {
        let nonce: u64 = rand::random();
        LoginLimiter {
            shared: Some(Shared {
                catalog,
                instance: format!("{}:{nonce:016x}", atelier_app::lease::owner()),
            }),
            ..LoginLimiter::new(policy)
        }
    }

    /// Like [`Self::reserve`], counting the failures the other instances recorded too.
    pub async fn reserve_shared(&self, key: &LoginKey) -> Result<Attempt<'_>, WebError> {
        let Some(shared) = &self.shared else {
            return self.reserve(key);
        };
        let (now, now_ms) = (Instant::now(), atelier_catalog::now_millis());
        let since = now_ms - self.policy.window.as_millis() as i64;
        let address = network(key.address).to_string();
        let mut keys = vec![
            (LoginTally::Name, key.name.as_str()),
            (LoginTally::Address, address.as_str()),
        ];
        if let Some(device) = &key.device {
            keys.push((LoginTally::Device, device.as_str()));
        }
        let found = shared
            .catalog
            .login_failures(&shared.instance, &keys, since)
            .await?;
        let instants = |times: Option<&Vec<i64>>| -> Vec<Instant> {
            times
                .into_iter()
                .flatten()
                .filter_map(|at| {
                    now.checked_sub(Duration::from_millis((now_ms - at).max(0) as u64))
                })
                .collect()
        };
        let remote = Remote {
            name: instants(found.first()),
            address: instants(found.get(1)),
            device: instants(found.get(2)),
        };
        self.reserve_with(key, remote)
    }

    pub fn policy(&self) -> &LoginPolicy {
        &self.policy
    }

    /// Reserves one login attempt for `key`, or refuses it with the seconds to wait. The
    /// attempt counts as a failure unless [`Attempt::succeeded`] or [`Attempt::abandon`] is
    /// called.
    pub fn reserve(&self, key: &LoginKey) -> Result<Attempt<'_>, WebError> {
        self.reserve_with(key, Remote::default())
    }

    fn reserve_with(&self, key: &LoginKey, remote: Remote) -> Result<Attempt<'_>, WebError> {
        let now = Instant::now();
        let oldest = now.checked_sub(self.policy.window);
        let mut tallies = self.lock();
        prune(&mut tallies, oldest);
        let address = network(key.address);
        tallies.names.entry(key.name.clone()).or_default().remote = remote.name;
        if let Some(device) = &key.device {
            tallies.devices.entry(device.clone()).or_default().remote = remote.device;
        }
        let by_address = tallies.addresses.entry(address).or_default();
        by_address.remote = remote.address;
        by_address.forget_before(oldest);
        if by_address.load() >= self.policy.max_failures_per_address {
            return Err(WebError::RateLimited(self.wait_for_oldest(by_address, now)));
        }
        let trusted = key.device.as_ref().is_some_and(|device| {
            let by_device = tallies.devices.entry(device.clone()).or_default();
            by_device.forget_before(oldest);
            by_device.load() < self.policy.max_failures_per_device
        });
        if !trusted {
            let by_name = tallies.names.entry(key.name.clone()).or_default();
            by_name.forget_before(oldest);
            self.check_name(by_name, now)?;
        }
        tallies.addresses.entry(address).or_default().in_flight += 1;
        tallies.names.entry(key.name.clone()).or_default().in_flight += 1;
        let device = key.device.clone().filter(|_| trusted);
        if let Some(device) = &device {
            tallies.devices.entry(device.clone()).or_default().in_flight += 1;
        }
        Ok(Attempt {
            limiter: self,
            name: key.name.clone(),
            address,
            device,
            settled: false,
        })
    }

    /// Whether an unknown client may try `name` now: free failures first, then backoff.
    fn check_name(&self, by_name: &Tally, now: Instant) -> Result<(), WebError> {
        let free = self.policy.free_failures_per_name;
        if by_name.load() < free {
            return Ok(());
        }
        // Past the free failures, one try at a time.
        if by_name.in_flight > 0 {
            return Err(WebError::RateLimited(1));
        }
        let beyond = (by_name.failed() - free).min(30) as u32;
        let wait = self
            .policy
            .first_backoff
            .saturating_mul(1 << beyond)
            .min(self.policy.max_backoff);
        let since = by_name
            .newest()
            .map_or(wait, |last| now.duration_since(last));
        if since < wait {
            return Err(WebError::RateLimited(
                (wait - since).as_secs_f64().ceil() as u64
            ));
        }
        Ok(())
    }

    fn wait_for_oldest(&self, tally: &Tally, now: Instant) -> u64 {
        tally.oldest().map_or(1, |oldest| {
            let age = now.duration_since(oldest);
            self.policy.window.saturating_sub(age).as_secs().max(1)
        })
    }

    /// Checks `password` against the PHC string `hash` on one of the checker threads, at most
    /// [`LoginPolicy::concurrent_checks`] at once; 503 when no check frees up in time.
    pub async fn check_password(&self, hash: String, password: String) -> Result<bool, WebError> {
        let busy = || WebError::Busy(self.policy.check_wait.as_secs().max(1));
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING_CHECKS {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(busy());
        }
        let permit =
            tokio::time::timeout(self.policy.check_wait, self.checks.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let Ok(Ok(_permit)) = permit else {
            return Err(busy());
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let sent = self
            .checkers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((hash, password, answer));
        if sent.is_err() {
            return Err(WebError::Internal("the password checkers stopped".into()));
        }
        answered
            .await
            .map_err(|_| WebError::Internal("a password check stopped unanswered".into()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tallies> {
        self.tallies.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn settle(&self, attempt: &Attempt<'_>, success: Option<bool>) {
        self.share(attempt, success);
        let now = Instant::now();
        let mut tallies = self.lock();
        let failed = success == Some(false);
        let by_name = tallies.names.entry(attempt.name.clone()).or_default();
        by_name.in_flight = by_name.in_flight.saturating_sub(1);
        match success {
            // The name's owner proved themselves: forget the guesses against it. The address
            // keeps its failures, or logging into one's own account would reset them.
            Some(true) => by_name.failures.clear(),
            Some(false) => by_name.failures.push_back(now),
            None => {}
        }
        let by_address = tallies.addresses.entry(attempt.address).or_default();
        by_address.in_flight = by_address.in_flight.saturating_sub(1);
        if failed {
            by_address.failures.push_back(now);
        }
        if let Some(device) = &attempt.device {
            let by_device = tallies.devices.entry(device.clone()).or_default();
            by_device.in_flight = by_device.in_flight.saturating_sub(1);
            match success {
                Some(true) => by_device.failures.clear(),
                Some(false) => by_device.failures.push_back(now),
                None => {}
            }
        }
    }
}

impl LoginLimiter {
    /// Tells the other instances, through the catalogue and in the background, of a failure
    /// (counted against the name, the address and the device) or of a success (which clears
    /// the name's and the device's failures).
    fn share(&self, attempt: &Attempt<'_>, success: Option<bool>) {
        let (Some(shared), Ok(runtime)) = (&self.shared, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let Some(success) = success else { return };
        let (catalog, instance) = (shared.catalog.clone(), shared.instance.clone());
        let (name, address) = (attempt.name.clone(), attempt.address.to_string());
        let device = attempt.device.clone();
        runtime.spawn(async move {
            let mut keys = vec![(LoginTally::Name, name.as_str())];
            if let Some(device) = &device {
                keys.push((LoginTally::Device, device.as_str()));
            }
            let written = if success {
                catalog.clear_login_failures(&keys).await
            } else {
                keys.push((LoginTally::Address, address.as_str()));
                let now = atelier_catalog::now_millis();
                catalog.record_login_failure(&instance, &keys, now).await
            };
            if let Err(error) = written {
                tracing::warn!("could not share a login outcome with the other instances: {error}");
            }
        });
    }
}

/// Starts `count` threads that check passwords until the returned sender is dropped.
fn spawn_checkers(count: usize) -> std::sync::mpsc::Sender<CheckJob> {
    let (sender, receiver) = std::sync::mpsc::channel::<CheckJob>();
    let receiver = Arc::new(Mutex::new(receiver));
    for i in 0..count {
        let receiver = receiver.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("login-check-{i}"))
            .spawn(move || {
                let mut memory = Vec::new();
                loop {
                    let job = receiver.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok((hash, password, answer)) = job else {
                        return;
                    };
                    let _ = answer.send(verify_password_in(&hash, &password, &mut memory));
                }
            });
        if let Err(error) = spawned {
            tracing::error!("cannot start a password checker thread: {error}");
        }
    }
    sender
}

/// Drops idle tallies once there are many (an attacker trying random names or addresses).
fn prune(tallies: &mut Tallies, oldest: Option<Instant>) {
    fn prune_map<K: Eq + std::hash::Hash>(map: &mut HashMap<K, Tally>, oldest: Option<Instant>) {
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, tally| {
                tally.forget_before(oldest);
                !tally.is_idle()
            });
        }
    }
    prune_map(&mut tallies.names, oldest);
    prune_map(&mut tallies.addresses, oldest);
    prune_map(&mut tallies.devices, oldest);
}

/// IPv4 addresses as they are; IPv6 ones by their /64 network (what one client usually holds).
fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
    }
}

/// One reserved login attempt. Dropped without an outcome (the client went away while its
/// password was checked), it counts as a failure.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    name: String,
    address: IpAddr,
    device: Option<String>,
    settled: bool,
}

impl Attempt<'_> {
    pub fn succeeded(mut self) {
        self.settled = true;
        self.limiter.settle(&self, Some(true));
    }

    pub fn failed(mut self) {
        self.settled = true;
        self.limiter.settle(&self, Some(false));
    }

    /// The password was never checked (the server was busy): the attempt counts for nothing.
    pub fn abandon(mut self) {
        self.settled = true;
        self.limiter.settle(&self, None);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.limiter.settle(self, Some(false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, address: [u8; 4], device: Option<&str>) -> LoginKey {
        LoginKey {
            name: name.into(),
            address: IpAddr::from(address),
            device: device.map(str::to_string),
        }
    }

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(LoginPolicy {
            free_failures_per_name: 2,
            max_failures_per_address: 4,
            max_failures_per_device: 2,
            first_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(40),
            ..LoginPolicy::default()
        })
    }

    fn wait_of(result: Result<Attempt<'_>, WebError>) -> Option<u64> {
        match result {
            Ok(_) => None,
            Err(WebError::RateLimited(seconds)) => Some(seconds),
            Err(other) => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn a_name_backs_off_after_its_free_failures_and_a_success_clears_it() {
        let limiter = limiter();
        for address in [[10, 0, 0, 1], [10, 0, 0, 2]] {
            limiter
                .reserve(&key("ann", address, None))
                .unwrap()
                .failed();
        }
        // The third try from a third address must wait first_backoff (10 s) after the last failure.
        let wait = wait_of(limiter.reserve(&key("ann", [10, 0, 0, 3], None))).unwrap();
        assert!((9..=10).contains(&wait), "waited {wait}");
        // Other names are not slowed down.
        limiter
            .reserve(&key("bob", [10, 0, 0, 3], None))
            .unwrap()
            .succeeded();
        // A known device of ann's is not slowed down, and its success clears the name.
        limiter
            .reserve(&key("ann", [10, 0, 0, 9], Some("dev-1")))
            .unwrap()
            .succeeded();
        limiter
            .reserve(&key("ann", [10, 0, 0, 3], None))
            .unwrap()
            .abandon();
    }

    #[test]
    fn concurrent_attempts_are_reserved_before_the_check() {
        let limiter = limiter();
        let first = limiter.reserve(&key("ann", [10, 0, 0, 1], None)).unwrap();
        let second = limiter.reserve(&key("ann", [10, 0, 0, 2], None)).unwrap();
        // Two attempts in flight fill ann's free failures: a third waits for them.
        assert_eq!(
            wait_of(limiter.reserve(&key("ann", [10, 0, 0, 3], None))),
            Some(1)
        );
        first.failed();
        drop(second); // dropped unsettled: a failure
        assert!(wait_of(limiter.reserve(&key("ann", [10, 0, 0, 3], None))).unwrap() >= 9);
    }

    #[test]
    fn an_address_is_refused_after_its_failures_whatever_the_names() {
        let limiter = limiter();
        for name in ["a", "b", "c", "d"] {
            limiter
                .reserve(&key(name, [10, 0, 0, 1], None))
                .unwrap()
                .failed();
        }
        let wait = wait_of(limiter.reserve(&key("e", [10, 0, 0, 1], None))).unwrap();
        assert!(
            wait > 800,
            "an address waits for its failures to leave the window: {wait}"
        );
        limiter
            .reserve(&key("e", [10, 0, 0, 2], None))
            .unwrap()
            .succeeded();
        // A success does not reset an address's failures.
        assert!(wait_of(limiter.reserve(&key("a", [10, 0, 0, 1], None))).is_some());
    }

    #[test]
    fn a_device_that_fails_too_often_is_treated_as_unknown() {
        let limiter = limiter();
        for address in [[10, 0, 0, 1], [10, 0, 0, 2]] {
            limiter
                .reserve(&key("ann", address, Some("dev-1")))
                .unwrap()
                .failed();
        }
        // dev-1 used up its failures, and they counted against ann's name too.
        assert!(wait_of(limiter.reserve(&key("ann", [10, 0, 0, 3], Some("dev-1")))).is_some());
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let limiter = limiter();
        let now = Instant::now();
        let mut tally = Tally::default();
        for failures in 2..8 {
            tally.failures = (0..failures).map(|_| now).collect();
            let expected = (10u64 << (failures - 2)).min(40);
            match limiter.check_name(&tally, now) {
                Err(WebError::RateLimited(wait)) => assert_eq!(wait, expected),
                _ => panic!("{failures} failures should wait"),
            }
        }
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(network(a), network(b));
        assert_ne!(network(a), network(c));
    }
}
