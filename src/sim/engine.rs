//! The world of the simulated target and its discrete-event engine.
//!
//! Everything the target knows lives in one [`World`] behind one mutex:
//! sessions with their queues, the target's accounts and packages, the event
//! queue and the request log. A request locks it, calls [`World::advance`] to
//! the current simulated time (applying every event due, in order), then acts
//! — so a `get_transfer_session_state` never waits for the engine task, and
//! the engine task (`server.rs`) only has to wake up at the next event when no
//! request comes.
//!
//! # Worker model (docs/whm.md §2–§4, `Processor.pm`)
//! A started session has a master and, per queue (TRANSFER, RESTORE), up to
//! `min(clamp(threads, 1, 9), item count)` workers. A worker's loop is
//! [`World::pump_session`]: at its top it exits PAUSED/ABORTED when a marker
//! is set and its queue still has work; otherwise it dequeues (type barrier,
//! `priority`, key, `prerequisite_user`), waits when blocked, and exits when
//! its queue is empty. Durations: an account transfers for
//! `size / transfer_rate` and restores for `size / restore_rate` holding one
//! of the target's `max_restores` slots (granted oldest-ready first across
//! sessions); packages and feature lists transfer for one second and restore
//! instantly. `itemlog` lays out what each step writes to its item log over
//! the step's simulated time; `lifecycle` owns masters, crashes and
//! maintenance; `workers` the loop above.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::clock::Clock;
use super::masterlog::{Control, ItemFields, SessionLogs};
use super::modules::{self, Module};
use super::scenario::{CrashLeaves, FailStage, FaultSpec, RemoteSpec, RestoreLoss, Scenario};
use super::session::{Marker, SessionState};

mod itemlog;
mod lifecycle;
mod workers;

use itemlog::Summary;

/// Seconds a RUNNING/PAUSING session may go without log activity, and a
/// PENDING one may exist, before maintenance fails/deletes it (`SessionDB.pm`).
pub(crate) const MAX_IDLE_TIME: f64 = 4.0 * 3600.0;
pub(crate) const MAX_SESSION_AGE: f64 = 30.0 * 86_400.0;

/// Item / queue states (`S/Constants.pm %QUEUE_STATES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ItemState {
    TransferPending = 0,
    TransferInprogress = 10,
    RestorePending = 30,
    RestoreInprogress = 40,
    Completed = 100,
    Failed = 200,
}

impl ItemState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ItemState::TransferPending => "TRANSFER_PENDING",
            ItemState::TransferInprogress => "TRANSFER_INPROGRESS",
            ItemState::RestorePending => "RESTORE_PENDING",
            ItemState::RestoreInprogress => "RESTORE_INPROGRESS",
            ItemState::Completed => "COMPLETED",
            ItemState::Failed => "FAILED",
        }
    }
    fn index(self) -> usize {
        match self {
            ItemState::TransferPending => 0,
            ItemState::TransferInprogress => 1,
            ItemState::RestorePending => 2,
            ItemState::RestoreInprogress => 3,
            ItemState::Completed => 4,
            ItemState::Failed => 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queue {
    Transfer,
    Restore,
}

impl Queue {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Queue::Transfer => "TRANSFER",
            Queue::Restore => "RESTORE",
        }
    }
    fn inprogress(self) -> ItemState {
        match self {
            Queue::Transfer => ItemState::TransferInprogress,
            Queue::Restore => ItemState::RestoreInprogress,
        }
    }
}

/// Root sessions (`copyacct`) or user sessions (`norootcopy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Root,
    User,
}

/// How an item's current step will end, decided when it starts.
#[derive(Debug, Clone)]
enum Outcome {
    /// `summary`: an account restore's (None for every other step);
    /// `lost`: what the restore could not bring over.
    Success {
        summary: Option<Summary>,
        lost: RestoreLoss,
    },
    Failure(String),
}

impl Outcome {
    fn done() -> Outcome {
        Outcome::Success {
            summary: None,
            lost: RestoreLoss::default(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Item {
    pub module: &'static Module,
    pub key: String,
    pub localuser: String,
    pub params: BTreeMap<String, String>,
    pub priority: u32,
    pub prerequisite_key: Option<String>,
    pub prerequisite_state: u32,
    pub state: ItemState,
    /// The worker pid that holds the item (0: none). Stays set on an orphan.
    pub pid: u32,
    /// The queue row's `size` (the enqueue hint, default 1).
    pub row_size: u64,
    /// Simulated time the item became RESTORE_PENDING (restore slot order).
    pub ready_since: f64,
    /// Bumped when a scheduled completion must be ignored (abort, crash).
    token: u64,
    outcome: Option<Outcome>,
    /// Which worker (queue, index) runs it.
    worker: Option<(Queue, usize)>,
    holds_slot: bool,
    /// Holds the local user's restore mutex.
    holds_mutex: bool,
    pub failure: Option<String>,
    /// Its RESTORE got past the early checks (its log gets a summary).
    restore_ran: bool,
    /// The percentages its current step's log shows, by simulated time.
    pcts: Vec<(f64, u32)>,
}

impl Item {
    pub(crate) fn fields(&self) -> ItemFields {
        ItemFields {
            item: self.key.clone(),
            local_item: self.localuser.clone(),
            item_type: self.module.name,
            item_name: self.module.item_name,
        }
    }
    fn log_name(&self, q: Queue) -> String {
        format!("item-{}_{}_{}", q.name(), self.module.name, self.key)
    }
    fn order_key(&self, idx: usize) -> (u32, u32, String, usize) {
        (self.module.type_id, self.priority, self.key.clone(), idx)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Completed,
    Paused,
    Aborted,
}

#[derive(Debug)]
pub(crate) struct Worker {
    pub child_number: u32,
    pub pid: u32,
    pub busy: Option<usize>,
    pub exited: Option<Exit>,
}

/// A live master process and its workers.
#[derive(Debug)]
pub(crate) struct Master {
    pub pid: u32,
    pub transfer: Vec<Worker>,
    pub restore: Vec<Worker>,
}

impl Master {
    pub(crate) fn workers(&self, q: Queue) -> &Vec<Worker> {
        match q {
            Queue::Transfer => &self.transfer,
            Queue::Restore => &self.restore,
        }
    }
    fn workers_mut(&mut self, q: Queue) -> &mut Vec<Worker> {
        match q {
            Queue::Transfer => &mut self.transfer,
            Queue::Restore => &mut self.restore,
        }
    }
    fn all_exited(&self) -> bool {
        self.transfer
            .iter()
            .chain(&self.restore)
            .all(|w| w.exited.is_some())
    }
}

#[derive(Debug)]
pub(crate) struct Session {
    pub id: String,
    pub kind: Kind,
    pub creator: String,
    /// The `host` argument as given.
    pub host: String,
    /// Index into the scenario's remotes.
    pub remote: Option<usize>,
    /// For user sessions: the remote account the password belongs to.
    pub remote_user: Option<String>,
    pub options: BTreeMap<String, String>,
    pub transfer_threads: u32,
    pub restore_threads: u32,
    pub state: SessionState,
    pub master: Option<Master>,
    /// `sessions.pid`: the last master's pid (kept after it dies).
    pub pid: Option<u32>,
    pub pause_marker: Marker,
    pub abort_marker: Marker,
    pub created_at: f64,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub last_activity: f64,
    pub items: Vec<Item>,
    by_key: HashMap<(u32, String), usize>,
    transfer_pending: BTreeSet<(u32, u32, String, usize)>,
    restore_pending: BTreeSet<(u32, u32, String, usize)>,
    counts: [usize; 6],
    /// Keys containing `pass` were nulled at completion (remote work now fails).
    pub credentials_cleared: bool,
    pub logs: SessionLogs,
    pub deleted: bool,
    /// Bumped by every abort call, so a stale AbortTerm does nothing.
    abort_gen: u64,
    /// What the last remote analysis stored (root sessions).
    pub analysis: Option<AnalysisSnapshot>,
}

/// What a remote analysis stores in its session (`Analyze.pm`): the
/// target's database dump and the database-name conflicts of that moment.
#[derive(Debug, Clone)]
pub(crate) struct AnalysisSnapshot {
    pub local_dbs: Value,
    pub conflicts: Value,
}

impl Session {
    pub(crate) fn alive(&self) -> bool {
        self.master.is_some()
    }
    pub(crate) fn item_by_key(&self, type_id: u32, key: &str) -> Option<usize> {
        self.by_key.get(&(type_id, key.to_string())).copied()
    }
    pub(crate) fn count(&self, s: ItemState) -> usize {
        self.counts[s.index()]
    }
    pub(crate) fn total_size(&self) -> u64 {
        self.items.iter().map(|i| i.row_size).sum()
    }
    /// `has_next_item`: anything below the queue's in-progress state.
    fn has_next_item(&self, q: Queue) -> bool {
        match q {
            Queue::Transfer => self.count(ItemState::TransferPending) > 0,
            Queue::Restore => {
                self.count(ItemState::TransferPending)
                    + self.count(ItemState::TransferInprogress)
                    + self.count(ItemState::RestorePending)
                    > 0
            }
        }
    }
    pub(crate) fn is_paused(&self) -> bool {
        self.pause_marker != Marker::None
    }
    pub(crate) fn is_aborted(&self) -> bool {
        self.abort_marker != Marker::None
    }
}

/// The target's record of one account (keyed by target username).
#[derive(Debug, Clone, Default)]
pub(crate) struct AccountRecord {
    pub source: Option<String>,
    pub user: String,
    pub transfers_started: u32,
    pub restores_started: u32,
    pub restores_completed: u32,
    pub restores_failed: u32,
    pub present: bool,
    pub owner: Option<String>,
    pub package: Option<String>,
    pub domain: Option<String>,
    /// Simulated time it became present.
    pub restored_at: Option<f64>,
    /// Its MySQL databases (each with a database user of the same name).
    pub databases: Vec<String>,
    /// Its addon domains (each on a subdomain of the main domain).
    pub addon_domains: Vec<String>,
    /// Suspended, and why (`suspendreason`).
    pub suspended: bool,
    pub suspend_reason: Option<String>,
    /// Unix time of the suspension (`suspendtime`).
    pub suspend_time: i64,
    /// Transfer archives (`cpmove-USER.tar.gz` under `/home`) kept for it:
    /// 1 after a completed restore, 0 after `delete_account_archives`.
    pub archives: u32,
    /// Its uid, given when it first became present.
    pub uid: u32,
    /// Disk used (whole KiB) and files used, as its quota reports them.
    pub kib_used: u64,
    pub files_used: u64,
}

/// An addon domain's subdomain of the main domain (`addon.example.net` on
/// `main.example.com` → `addon.main.example.com`; whm-sim's choice of the
/// label, which the archive would carry).
pub(crate) fn addon_subdomain(addon: &str, main: &str) -> String {
    let label = addon.split('.').next().unwrap_or(addon);
    format!("{label}.{main}")
}

/// One row of the target's domains (`/etc/userdatadomains`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DomainRow {
    pub domain: String,
    pub user: String,
    pub owner: String,
    /// `main`, `addon`, `sub` or `parked`.
    pub kind: &'static str,
    pub parent: String,
    pub docroot: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct PackageRecord {
    pub present: bool,
    pub transfers: u32,
}

/// One API request, as `/__sim/requests` lists it.
#[derive(Debug, Clone)]
pub(crate) struct RequestRecord {
    pub index: u64,
    pub method: String,
    pub function: String,
    pub query_keys: Vec<String>,
    pub body_keys: Vec<String>,
    pub params: BTreeMap<String, String>,
    pub sim_time: f64,
    pub auth_user: Option<String>,
    /// The request's `X-Whm-Sim-Tag` header: a label tests attach (e.g.
    /// `nonconformant` for a deliberately malformed request).
    pub tag: Option<String>,
    pub fault: Option<&'static str>,
    pub status: Option<u16>,
    pub result: Option<u8>,
    pub reason: Option<String>,
    /// Simulated seconds at which its handler stopped (answered, reset,
    /// hung up, or dropped when the client went away); None while running.
    pub finished: Option<f64>,
}

#[derive(Debug)]
enum Ev {
    /// An item's current step ends.
    ItemDone {
        s: usize,
        item: usize,
        token: u64,
    },
    /// The TERM sent by an abort reaches the workers.
    AbortTerm {
        s: usize,
        generation: u64,
    },
    Crash,
    Maintenance,
}

#[derive(Debug)]
struct Scheduled {
    t: f64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    /// Reversed: BinaryHeap pops the earliest (t, seq) first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.t.total_cmp(&self.t).then(o.seq.cmp(&self.seq))
    }
}

pub(crate) struct World {
    pub scenario: Scenario,
    pub clock: Clock,
    /// Simulated time the world has been advanced to.
    pub now: f64,
    events: BinaryHeap<Scheduled>,
    seq: u64,
    pub sessions: Vec<Session>,
    pub index: HashMap<String, usize>,
    pub accounts: BTreeMap<String, AccountRecord>,
    pub packages: BTreeMap<String, PackageRecord>,
    restores_busy: usize,
    /// Local users being restored right now (`set_account_restoration_mutex`).
    restoring: HashSet<String>,
    /// Remaining failures per remote user (`faults.fail_items`).
    fail_left: HashMap<String, u32>,
    rng: ChaCha8Rng,
    next_pid: u32,
    pub requests: Vec<RequestRecord>,
    pub request_counts: BTreeMap<String, u64>,
    /// Fault settings in force (can be replaced at run time via `/__sim/faults`).
    pub faults: FaultSpec,
    pub crashes: u32,
    /// API requests being handled now (waits included: latency, a blocked
    /// log fetch, a hang), and the most there ever were at once.
    pub in_flight: u32,
    pub in_flight_max: u32,
    /// `nvset`/`nvget` stores keyed by (caller, store name), `""` being the
    /// caller's default store (`api/nvdata.rs`); kept for the simulator's life.
    pub nvdata: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// The uid the next account to appear gets.
    pub next_uid: u32,
    /// The source accounts, by (remote host as in the scenario, user).
    pub remote_accounts: BTreeMap<(String, String), RemoteAccountState>,
}

/// What a live transfer does to a source account (`Items/AccountBase.pm::
/// _run_remote_xferpoint`, `Systems/ServiceProxy.pm`): its logins are
/// disabled (it is suspended: "User transferred to another server") and
/// its web and mail services are proxied to the target.
#[derive(Debug, Clone, Default)]
pub(crate) struct RemoteAccountState {
    pub suspended: bool,
    pub suspend_reason: Option<String>,
    pub proxied: bool,
}

impl AccountRecord {
    /// Its main domain (`USER.example.com` when none is known).
    pub(crate) fn main_domain(&self, user: &str) -> String {
        self.domain
            .clone()
            .unwrap_or_else(|| format!("{user}.example.com"))
    }

    /// Its domains: the main one, then the addon domains.
    pub(crate) fn domains(&self, user: &str) -> Vec<String> {
        std::iter::once(self.main_domain(user))
            .chain(self.addon_domains.iter().cloned())
            .collect()
    }
}

impl World {
    pub(crate) fn new(scenario: Scenario, clock: Clock) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.faults.seed);
        rng.set_stream(u64::MAX);
        let mut w = World {
            clock,
            now: 0.0,
            events: BinaryHeap::new(),
            seq: 0,
            sessions: Vec::new(),
            index: HashMap::new(),
            accounts: BTreeMap::new(),
            packages: BTreeMap::new(),
            restores_busy: 0,
            restoring: HashSet::new(),
            fail_left: HashMap::new(),
            next_pid: 4000 + rng.random_range(0..1000),
            rng,
            requests: Vec::new(),
            request_counts: BTreeMap::new(),
            faults: scenario.faults.clone(),
            crashes: 0,
            in_flight: 0,
            in_flight_max: 0,
            nvdata: BTreeMap::new(),
            next_uid: 1001,
            remote_accounts: BTreeMap::new(),
            scenario,
        };
        for r in &w.scenario.remotes {
            for a in &r.accounts {
                w.remote_accounts.insert(
                    (r.host.clone(), a.user.clone()),
                    RemoteAccountState {
                        suspended: a.suspended,
                        suspend_reason: None,
                        proxied: false,
                    },
                );
            }
        }
        for a in &w.scenario.target.existing_accounts {
            let spec = a.spec();
            w.accounts.insert(
                spec.user.clone(),
                AccountRecord {
                    user: spec.user.clone(),
                    present: true,
                    owner: Some(spec.owner.clone()),
                    package: spec.package.clone(),
                    domain: spec.domain.clone(),
                    uid: w.next_uid,
                    ..AccountRecord::default()
                },
            );
            w.next_uid += 1;
        }
        for p in &w.scenario.target.existing_packages {
            w.packages.insert(
                p.clone(),
                PackageRecord {
                    present: true,
                    transfers: 0,
                },
            );
        }
        w.reset_fault_state();
        if let Some(every) = w.scenario.target.maintenance_interval {
            w.schedule(every, Ev::Maintenance);
        }
        w
    }

    /// Re-arm `fail_items` counters and `crash_at` events from `self.faults`.
    pub(crate) fn reset_fault_state(&mut self) {
        self.fail_left = self
            .faults
            .fail_items
            .iter()
            .map(|(k, v)| (k.clone(), v.times))
            .collect();
        let old: Vec<Scheduled> = std::mem::take(&mut self.events).into_vec();
        self.events = old
            .into_iter()
            .filter(|e| !matches!(e.ev, Ev::Crash))
            .collect();
        for t in self.faults.crash_at.clone() {
            if t >= self.now {
                self.schedule(t, Ev::Crash);
            }
        }
    }

    fn schedule(&mut self, t: f64, ev: Ev) {
        self.seq += 1;
        self.events.push(Scheduled {
            t,
            seq: self.seq,
            ev,
        });
    }

    pub(crate) fn next_event_time(&self) -> Option<f64> {
        self.events.peek().map(|e| e.t)
    }

    pub(crate) fn new_pid(&mut self) -> u32 {
        self.next_pid += 1 + self.rng.random_range(0..7);
        self.next_pid
    }

    /// A `Cpanel::Exception` id, e.g. `(XID 4ws7fv)`.
    pub(crate) fn xid(&mut self) -> String {
        const CH: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let s: String = (0..6)
            .map(|_| CH[self.rng.random_range(0..CH.len())] as char)
            .collect();
        format!("(XID {s})")
    }

    pub(crate) fn random_alnum(&mut self, n: usize) -> String {
        const CH: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        (0..n)
            .map(|_| CH[self.rng.random_range(0..CH.len())] as char)
            .collect()
    }

    pub(crate) fn unix_now(&self) -> i64 {
        self.clock.unix(self.now)
    }

    /// The target's database dump (`dump_databases_and_users`).
    pub(crate) fn target_db_dump(&self) -> Value {
        crate::sim::api::db_dump(
            self.accounts
                .iter()
                .filter(|(_, a)| a.present)
                .map(|(u, a)| (u.as_str(), a.databases.as_slice())),
        )
    }

    /// Every domain of the target's accounts with its user (`/etc/userdomains`).
    pub(crate) fn target_domains(&self) -> Vec<(String, String)> {
        self.domain_rows()
            .into_iter()
            .map(|r| (r.domain, r.user))
            .collect()
    }

    /// The target's domains as `Cpanel/Config/userdata/UpdateCache.pm` caches
    /// them, sorted by name: each account's main domain, and per addon
    /// domain its subdomain (type `sub`) and the addon (parent: that subdomain).
    pub(crate) fn domain_rows(&self) -> Vec<DomainRow> {
        let mut rows = Vec::new();
        for (u, a) in self.accounts.iter().filter(|(_, a)| a.present) {
            let main = a.main_domain(u);
            let owner = a.owner.clone().unwrap_or_else(|| "root".into());
            let row = |domain: String, kind, parent: String, docroot: String| DomainRow {
                domain,
                user: u.clone(),
                owner: owner.clone(),
                kind,
                parent,
                docroot,
            };
            rows.push(row(
                main.clone(),
                "main",
                main.clone(),
                format!("/home/{u}/public_html"),
            ));
            for addon in &a.addon_domains {
                let sub = addon_subdomain(addon, &main);
                let docroot = format!("/home/{u}/public_html/{addon}");
                rows.push(row(sub.clone(), "sub", main.clone(), docroot.clone()));
                rows.push(row(addon.clone(), "addon", sub, docroot));
            }
        }
        rows.sort_by(|a, b| a.domain.cmp(&b.domain));
        rows
    }
    pub(crate) fn remote(&self, s: usize) -> Option<&RemoteSpec> {
        self.sessions[s]
            .remote
            .and_then(|r| self.scenario.remotes.get(r))
    }

    /// Apply every event due at or before `t`, then move `now` to `t`.
    /// Returns whether anything happened.
    pub(crate) fn advance(&mut self, t: f64) -> bool {
        let mut changed = false;
        while let Some(top) = self.events.peek() {
            if top.t > t {
                break;
            }
            let Some(e) = self.events.pop() else { break };
            self.now = self.now.max(e.t);
            self.handle(e.ev);
            self.pump();
            changed = true;
        }
        if t > self.now {
            self.now = t;
        }
        changed
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::ItemDone { s, item, token } => {
                if self.sessions[s].items[item].token == token {
                    self.finish_item(s, item);
                }
            }
            Ev::AbortTerm { s, generation } => {
                if self.sessions[s].abort_gen == generation && self.sessions[s].alive() {
                    self.term_workers(s);
                }
            }
            Ev::Crash => self.crash(),
            Ev::Maintenance => {
                self.maintenance();
                if let Some(every) = self.scenario.target.maintenance_interval {
                    self.schedule(self.now + every, Ev::Maintenance);
                }
            }
        }
    }

    // ----- master.log helpers -------------------------------------------------

    /// Append a control line written by process `who` = (pid, child_number).
    pub(crate) fn master_line(
        &mut self,
        s: usize,
        who: (u32, u32),
        action: &str,
        queue: Option<Queue>,
        item: Option<usize>,
        msg: Option<Value>,
    ) {
        let (pid, child) = who;
        let time = self.unix_now();
        let sess = &mut self.sessions[s];
        let fields = item.map(|i| sess.items[i].fields());
        let logfile = match (item, queue) {
            (Some(i), Some(q)) => Some(sess.items[i].log_name(q)),
            _ => None,
        };
        sess.logs.master(&Control {
            pid,
            action,
            time,
            child_number: child,
            queue: queue.map(Queue::name),
            item: fields.as_ref(),
            logfile,
            msg,
        });
        sess.last_activity = self.now;
    }

    pub(crate) fn offline_line(&mut self, s: usize, action: &str) {
        let time = self.unix_now();
        let pid = self.sessions[s].pid.unwrap_or(0);
        let sess = &mut self.sessions[s];
        sess.logs.offline(&Control {
            pid,
            action,
            time,
            child_number: 0,
            queue: None,
            item: None,
            logfile: None,
            msg: None,
        });
        sess.last_activity = self.now;
    }

    // ----- items ----------------------------------------------------------------

    /// Insert a queue row (`Session.pm::enqueue` after validation).
    pub(crate) fn insert_item(
        &mut self,
        s: usize,
        module: &'static Module,
        key: String,
        localuser: String,
        params: BTreeMap<String, String>,
    ) {
        let priority = params
            .get("priority")
            .and_then(|p| leading_digits(p))
            .filter(|p| *p > 0)
            .unwrap_or(255) as u32;
        let row_size = params
            .get("size")
            .and_then(|p| leading_digits(p))
            .filter(|p| *p > 0)
            .unwrap_or(1);
        let prerequisite_key = module
            .schema
            .prerequisite
            .and_then(|k| params.get(k))
            .filter(|v| !v.is_empty())
            .cloned();
        let prerequisite_state = if prerequisite_key.is_some() { 0 } else { 100 };
        if modules::is_account(module.name) {
            let source = self.sessions[s].host.clone();
            let rec = self.accounts.entry(localuser.clone()).or_default();
            if rec.user.is_empty() {
                rec.user = key.clone();
            }
            if rec.source.is_none() && !rec.present {
                rec.source = Some(source);
                rec.user = key.clone();
            }
        }
        let sess = &mut self.sessions[s];
        let idx = sess.items.len();
        sess.items.push(Item {
            module,
            key: key.clone(),
            localuser,
            params,
            priority,
            prerequisite_key,
            prerequisite_state,
            state: ItemState::TransferPending,
            pid: 0,
            row_size,
            ready_since: 0.0,
            token: 0,
            outcome: None,
            worker: None,
            holds_slot: false,
            holds_mutex: false,
            failure: None,
            restore_ran: false,
            pcts: Vec::new(),
        });
        sess.by_key.insert((module.type_id, key), idx);
        let ok = sess.items[idx].order_key(idx);
        sess.transfer_pending.insert(ok);
        sess.counts[ItemState::TransferPending.index()] += 1;
        sess.last_activity = self.now;
    }

    /// `_set_state`: move an item and copy the new state to every item of the
    /// session whose `prerequisite_key` is this item's key.
    fn set_item_state(&mut self, s: usize, idx: usize, new: ItemState) {
        let sess = &mut self.sessions[s];
        let old = sess.items[idx].state;
        if old == new {
            return;
        }
        let ok = sess.items[idx].order_key(idx);
        match old {
            ItemState::TransferPending => {
                sess.transfer_pending.remove(&ok);
            }
            ItemState::RestorePending => {
                sess.restore_pending.remove(&ok);
            }
            _ => {}
        }
        match new {
            ItemState::TransferPending => {
                sess.transfer_pending.insert(ok);
            }
            ItemState::RestorePending => {
                sess.restore_pending.insert(ok);
            }
            _ => {}
        }
        sess.counts[old.index()] -= 1;
        sess.counts[new.index()] += 1;
        sess.items[idx].state = new;
        if new as u32 != 0 {
            let key = sess.items[idx].key.clone();
            for it in sess.items.iter_mut() {
                if it.prerequisite_key.as_deref() == Some(key.as_str()) {
                    it.prerequisite_state = new as u32;
                }
            }
        }
    }
}

/// Perl's `m{([0-9]+)}` on a parameter.
pub(crate) fn leading_digits(s: &str) -> Option<u64> {
    let start = s.find(|c: char| c.is_ascii_digit())?;
    let digits: String = s[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: String,
        kind: Kind,
        creator: String,
        host: String,
        remote: Option<usize>,
        options: BTreeMap<String, String>,
        transfer_threads: u32,
        restore_threads: u32,
        now: f64,
    ) -> Session {
        Session {
            id,
            kind,
            creator,
            host,
            remote,
            remote_user: None,
            options,
            transfer_threads,
            restore_threads,
            state: SessionState::Pending,
            master: None,
            pid: None,
            pause_marker: Marker::None,
            abort_marker: Marker::None,
            created_at: now,
            started_at: None,
            finished_at: None,
            last_activity: now,
            items: Vec::new(),
            by_key: Default::default(),
            transfer_pending: Default::default(),
            restore_pending: Default::default(),
            counts: [0; 6],
            credentials_cleared: false,
            logs: Default::default(),
            deleted: false,
            abort_gen: 0,
            analysis: None,
        }
    }
}
