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
//! # Worker model (whm-transfer-api.md §2–§4, `Processor.pm`)
//! A started session has a master and, per queue (TRANSFER, RESTORE), up to
//! `min(clamp(threads, 1, 9), item count)` workers. A worker's loop is
//! [`World::pump_session`]: at its top it exits PAUSED/ABORTED when a marker
//! is set and its queue still has work; otherwise it dequeues (type barrier,
//! `priority`, key, `prerequisite_user`), waits when blocked, and exits when
//! its queue is empty. Durations: an account transfers for
//! `size / transfer_rate` and restores for `size / restore_rate` holding one
//! of the target's `max_restores` slots (granted oldest-ready first across
//! sessions); packages and feature lists transfer for one second and restore
//! instantly.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::clock::Clock;
use super::masterlog::{Control, ItemFields, SessionLogs, out_line};
use super::modules::{self, Module};
use super::scenario::{CrashLeaves, FailStage, FaultSpec, RemoteSpec, Scenario};
use super::session::{Marker, SessionState};

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
    Success { warnings: Vec<String> },
    Failure(String),
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
            scenario,
        };
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
                    ..AccountRecord::default()
                },
            );
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
            .and_then(|sc| sc.prerequisite)
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

    /// `dequeue_next_item` for one queue: Some(item) to fetch, or whether the
    /// worker is blocked (true) or its queue is empty (false).
    fn dequeue(&self, s: usize, q: Queue) -> Result<usize, bool> {
        let sess = &self.sessions[s];
        let master = sess.master.as_ref();
        // type of an in-progress row whose worker is alive
        let inprog_type = master.and_then(|m| {
            m.workers(q)
                .iter()
                .filter_map(|w| w.busy)
                .map(|i| sess.items[i].module.type_id)
                .min()
        });
        let pending = match q {
            Queue::Transfer => &sess.transfer_pending,
            Queue::Restore => &sess.restore_pending,
        };
        let lowest_pending = pending.iter().next().map(|k| k.0);
        let type_to_process = inprog_type.or(lowest_pending);
        let same = lowest_pending.is_some() && lowest_pending == type_to_process;
        if same && let Some(t) = type_to_process {
            let threshold = q.inprogress() as u32;
            let found = pending
                .range((t, 0, String::new(), 0)..)
                .take_while(|k| k.0 == t)
                .find(|k| sess.items[k.3].prerequisite_state > threshold);
            if let Some(k) = found {
                return Ok(k.3);
            }
        }
        Err(same || lowest_pending.is_some() || sess.has_next_item(q))
    }

    /// Whether item `idx` needs one of the target's restore slots.
    fn needs_slot(&self, s: usize, idx: usize) -> bool {
        modules::is_account(self.sessions[s].items[idx].module.name)
    }

    /// Run every live session's workers until nothing more can start.
    pub(crate) fn pump(&mut self) {
        loop {
            let mut progress = false;
            for s in 0..self.sessions.len() {
                if self.sessions[s].alive() {
                    progress |= self.pump_session(s);
                }
            }
            progress |= self.grant_restore_slots();
            if !progress {
                break;
            }
        }
    }

    /// One pass over a session's idle workers (the top of `_process_items`).
    /// Account restores that need a target slot are left to `grant_restore_slots`.
    fn pump_session(&mut self, s: usize) -> bool {
        let mut progress = false;
        for q in [Queue::Transfer, Queue::Restore] {
            let n = self.sessions[s]
                .master
                .as_ref()
                .map_or(0, |m| m.workers(q).len());
            for w in 0..n {
                let Some(m) = self.sessions[s].master.as_ref() else {
                    return progress;
                };
                let wk = &m.workers(q)[w];
                if wk.busy.is_some() || wk.exited.is_some() {
                    continue;
                }
                let sess = &self.sessions[s];
                if (sess.is_paused() || sess.is_aborted()) && sess.has_next_item(q) {
                    let code = if sess.is_aborted() {
                        Exit::Aborted
                    } else {
                        Exit::Paused
                    };
                    self.worker_exit(s, q, w, code);
                    progress = true;
                    continue;
                }
                match self.dequeue(s, q) {
                    Ok(idx) => {
                        if q == Queue::Restore && self.needs_slot(s, idx) {
                            continue;
                        }
                        self.start_item(s, q, w, idx);
                        progress = true;
                    }
                    Err(true) => {}
                    Err(false) => {
                        let (pid, child) = {
                            let wk = &self.sessions[s]
                                .master
                                .as_ref()
                                .unwrap_or_else(|| unreachable!())
                                .workers(q)[w];
                            (wk.pid, wk.child_number)
                        };
                        self.master_line(s, (pid, child), "complete", Some(q), None, None);
                        self.worker_exit(s, q, w, Exit::Completed);
                        progress = true;
                    }
                }
            }
        }
        if self.sessions[s]
            .master
            .as_ref()
            .is_some_and(|m| m.all_exited())
        {
            self.finish_master(s);
            progress = true;
        }
        progress
    }

    fn worker_exit(&mut self, s: usize, q: Queue, w: usize, code: Exit) {
        if let Some(m) = self.sessions[s].master.as_mut() {
            m.workers_mut(q)[w].exited = Some(code);
        }
    }

    /// Grant free restore slots, oldest RESTORE_PENDING first across sessions.
    fn grant_restore_slots(&mut self) -> bool {
        let mut progress = false;
        while self.restores_busy < self.scenario.target.max_restores {
            let mut best: Option<(f64, usize, usize, usize)> = None;
            for s in 0..self.sessions.len() {
                let Some(m) = self.sessions[s].master.as_ref() else {
                    continue;
                };
                let Some(w) = m
                    .restore
                    .iter()
                    .position(|w| w.busy.is_none() && w.exited.is_none())
                else {
                    continue;
                };
                let sess = &self.sessions[s];
                if (sess.is_paused() || sess.is_aborted()) && sess.has_next_item(Queue::Restore) {
                    continue;
                }
                if let Ok(idx) = self.dequeue(s, Queue::Restore)
                    && self.needs_slot(s, idx)
                {
                    let ready = self.sessions[s].items[idx].ready_since;
                    if best.is_none_or(|b| ready < b.0) {
                        best = Some((ready, s, w, idx));
                    }
                }
            }
            let Some((_, s, w, idx)) = best else { break };
            self.start_item(s, Queue::Restore, w, idx);
            progress = true;
        }
        progress
    }

    /// A worker fetched an item: log it, decide how the step ends, schedule it.
    fn start_item(&mut self, s: usize, q: Queue, w: usize, idx: usize) {
        let (pid, child) = {
            let m = self.sessions[s]
                .master
                .as_mut()
                .unwrap_or_else(|| unreachable!());
            let wk = &mut m.workers_mut(q)[w];
            wk.busy = Some(idx);
            (wk.pid, wk.child_number)
        };
        self.set_item_state(s, idx, q.inprogress());
        {
            let it = &mut self.sessions[s].items[idx];
            it.pid = pid;
            it.worker = Some((q, w));
        }
        let log = self.sessions[s].items[idx].log_name(q);
        let size = self.sessions[s].items[idx].row_size;
        self.master_line(s, (pid, child), "start", Some(q), Some(idx), None);
        self.master_line(
            s,
            (pid, child),
            "process-item",
            Some(q),
            Some(idx),
            Some(log.clone().into()),
        );
        self.master_line(
            s,
            (pid, child),
            "start-item",
            Some(q),
            Some(idx),
            Some(json!({"size": size})),
        );
        self.sessions[s].logs.item_create(&log);
        let (dur, outcome) = match q {
            Queue::Transfer => self.plan_transfer(s, idx),
            Queue::Restore => self.plan_restore(s, idx),
        };
        let text = match q {
            Queue::Transfer => format!(
                "Transferring “{}” from “{}” …",
                self.sessions[s].items[idx].key, self.sessions[s].host
            ),
            Queue::Restore => format!("Restoring “{}” …", self.sessions[s].items[idx].localuser),
        };
        self.sessions[s]
            .logs
            .item_append(&log, &out_line(pid, &text));
        let it = &mut self.sessions[s].items[idx];
        it.outcome = Some(outcome);
        it.token += 1;
        let token = it.token;
        self.schedule(
            self.now + dur,
            Ev::ItemDone {
                s,
                item: idx,
                token,
            },
        );
    }

    fn account_spec(&self, s: usize, idx: usize) -> Option<&super::scenario::AccountSpec> {
        let key = &self.sessions[s].items[idx].key;
        self.remote(s)?.accounts.iter().find(|a| &a.user == key)
    }

    fn take_fail(&mut self, user: &str, stage: FailStage) -> Option<String> {
        let spec = self.faults.fail_items.get(user)?;
        if spec.stage != stage {
            return None;
        }
        let left = self.fail_left.get_mut(user)?;
        if *left == 0 {
            return None;
        }
        *left -= 1;
        Some(spec.message.clone())
    }

    /// How long the TRANSFER step of an item takes and how it ends.
    fn plan_transfer(&mut self, s: usize, idx: usize) -> (f64, Outcome) {
        let module = self.sessions[s].items[idx].module;
        let key = self.sessions[s].items[idx].key.clone();
        let host = self.sessions[s].host.clone();
        if !modules::simulated(module.name) {
            return (
                0.0,
                Outcome::Failure(format!(
                    "whm-sim does not simulate the “{}” module.",
                    module.name
                )),
            );
        }
        if self.sessions[s].credentials_cleared {
            return (
                0.0,
                Outcome::Failure(format!(
                    "The system failed to authenticate to “{host}” because the session’s credentials were removed when it completed."
                )),
            );
        }
        let rate = self.remote(s).map_or(50e6, |r| r.transfer_rate.0 as f64);
        match module.name {
            "PackageRemoteRoot" => {
                let has = self.remote(s).is_some_and(|r| r.packages.contains(&key));
                if has {
                    (1.0, Outcome::Success { warnings: vec![] })
                } else {
                    (
                        1.0,
                        Outcome::Failure(format!(
                            "The package “{key}” does not exist on “{host}”."
                        )),
                    )
                }
            }
            "FeatureListRemoteRoot" => (1.0, Outcome::Success { warnings: vec![] }),
            _ => {
                let localuser = self.sessions[s].items[idx].localuser.clone();
                self.accounts
                    .entry(localuser.clone())
                    .or_default()
                    .transfers_started += 1;
                let skipaccount = self.sessions[s].items[idx]
                    .params
                    .get("skipaccount")
                    .is_some_and(|v| v == "1");
                let present = self.accounts.get(&localuser).is_some_and(|a| a.present);
                if present && !skipaccount {
                    return (
                        0.0,
                        Outcome::Failure(format!(
                            "A user named “{localuser}” already exists on this server."
                        )),
                    );
                }
                if !present && skipaccount {
                    return (
                        0.0,
                        Outcome::Failure(format!(
                            "No user named “{localuser}” exists on this server."
                        )),
                    );
                }
                let Some(spec) = self.account_spec(s, idx) else {
                    return (
                        1.0,
                        Outcome::Failure(format!(
                            "The account “{key}” does not exist on “{host}”."
                        )),
                    );
                };
                let dur = spec.size.0 as f64 / rate;
                match self.take_fail(&key, FailStage::Transfer) {
                    Some(msg) => (dur, Outcome::Failure(msg)),
                    None => (dur, Outcome::Success { warnings: vec![] }),
                }
            }
        }
    }

    /// How long the RESTORE step of an item takes and how it ends; takes a
    /// restore slot and the local user's restore mutex for accounts.
    fn plan_restore(&mut self, s: usize, idx: usize) -> (f64, Outcome) {
        let module = self.sessions[s].items[idx].module;
        if !modules::is_account(module.name) {
            return (0.0, Outcome::Success { warnings: vec![] });
        }
        let key = self.sessions[s].items[idx].key.clone();
        let localuser = self.sessions[s].items[idx].localuser.clone();
        self.restores_busy += 1;
        self.sessions[s].items[idx].holds_slot = true;
        self.accounts
            .entry(localuser.clone())
            .or_default()
            .restores_started += 1;
        if self.restoring.contains(&localuser) {
            return (
                0.0,
                Outcome::Failure(format!(
                    "Another process claims to be restoring {localuser}."
                )),
            );
        }
        self.restoring.insert(localuser.clone());
        self.sessions[s].items[idx].holds_mutex = true;
        if self.accounts.get(&localuser).is_some_and(|a| a.present) {
            return (
                0.0,
                Outcome::Failure(format!(
                    "A user named “{localuser}” already exists on this server."
                )),
            );
        }
        let (size, warnings) = self
            .account_spec(s, idx)
            .map_or((50_000_000, vec![]), |a| (a.size.0, a.warnings.clone()));
        let dur = size as f64 / self.scenario.target.restore_rate.0 as f64;
        match self.take_fail(&key, FailStage::Restore) {
            Some(msg) => (dur, Outcome::Failure(msg)),
            None => (dur, Outcome::Success { warnings }),
        }
    }

    /// The scheduled end of an item's step.
    fn finish_item(&mut self, s: usize, idx: usize) {
        let Some((q, w)) = self.sessions[s].items[idx].worker else {
            return;
        };
        let outcome = self.sessions[s].items[idx]
            .outcome
            .take()
            .unwrap_or(Outcome::Failure("Internal code error".into()));
        match outcome {
            Outcome::Success { warnings } => self.item_succeeded(s, idx, q, w, warnings),
            Outcome::Failure(msg) => self.item_failed(s, idx, q, w, &msg),
        }
    }

    fn worker_ids(&self, s: usize, q: Queue, w: usize) -> (u32, u32) {
        self.sessions[s].master.as_ref().map_or((0, 0), |m| {
            let wk = &m.workers(q)[w];
            (wk.pid, wk.child_number)
        })
    }

    fn release_worker(&mut self, s: usize, idx: usize) {
        let Some((q, w)) = self.sessions[s].items[idx].worker.take() else {
            return;
        };
        if let Some(m) = self.sessions[s].master.as_mut() {
            m.workers_mut(q)[w].busy = None;
        }
        let it = &mut self.sessions[s].items[idx];
        it.pid = 0;
        release_slot_and_mutex(it, &mut self.restores_busy, &mut self.restoring);
    }

    fn item_succeeded(&mut self, s: usize, idx: usize, q: Queue, w: usize, warnings: Vec<String>) {
        let (pid, child) = self.worker_ids(s, q, w);
        let log = self.sessions[s].items[idx].log_name(q);
        let size = self.sessions[s].items[idx].row_size;
        let msg = summary(size, &warnings, None, Some("Done"));
        let action = if warnings.is_empty() {
            "success-item"
        } else {
            "warning-item"
        };
        self.sessions[s]
            .logs
            .item_append(&log, &out_line(pid, "Done."));
        self.sessions[s].logs.item_complete(&log);
        self.master_line(s, (pid, child), action, Some(q), Some(idx), Some(msg));
        self.release_worker(s, idx);
        match q {
            Queue::Transfer => {
                let module = self.sessions[s].items[idx].module.name;
                if module == "PackageRemoteRoot" {
                    let key = self.sessions[s].items[idx].key.clone();
                    let p = self.packages.entry(key).or_default();
                    p.present = true;
                    p.transfers += 1;
                }
                self.sessions[s].items[idx].ready_since = self.now;
                self.set_item_state(s, idx, ItemState::RestorePending);
            }
            Queue::Restore => {
                if modules::is_account(self.sessions[s].items[idx].module.name) {
                    self.account_restored(s, idx);
                }
                self.set_item_state(s, idx, ItemState::Completed);
            }
        }
    }

    fn account_restored(&mut self, s: usize, idx: usize) {
        let spec = self.account_spec(s, idx).cloned();
        let it = &self.sessions[s].items[idx];
        let localuser = it.localuser.clone();
        let domain = it
            .params
            .get("domain")
            .cloned()
            .or_else(|| spec.as_ref().and_then(|a| a.domain.clone()));
        let wanted_owner = spec
            .as_ref()
            .map_or("root".to_string(), |a| a.owner.clone());
        // The owner is kept only when that reseller exists on the target.
        let owner = if wanted_owner == "root"
            || self.accounts.get(&wanted_owner).is_some_and(|a| a.present)
        {
            wanted_owner
        } else {
            "root".to_string()
        };
        let now = self.now;
        let rec = self.accounts.entry(localuser).or_default();
        rec.restores_completed += 1;
        rec.present = true;
        rec.owner = Some(owner);
        rec.package = spec.and_then(|a| a.package);
        rec.domain = domain;
        rec.restored_at = Some(now);
    }

    fn item_failed(&mut self, s: usize, idx: usize, q: Queue, w: usize, message: &str) {
        let (pid, child) = self.worker_ids(s, q, w);
        let log = self.sessions[s].items[idx].log_name(q);
        let size = self.sessions[s].items[idx].row_size;
        self.sessions[s]
            .logs
            .item_append(&log, &out_line(pid, message));
        self.sessions[s].logs.item_complete(&log);
        self.master_line(
            s,
            (pid, child),
            "failed-item",
            Some(q),
            Some(idx),
            Some(summary(size, &[], Some(message), None)),
        );
        if q == Queue::Restore && modules::is_account(self.sessions[s].items[idx].module.name) {
            let lu = self.sessions[s].items[idx].localuser.clone();
            self.accounts.entry(lu).or_default().restores_failed += 1;
        }
        if q == Queue::Transfer {
            // `_mark_item_failed_in_subsequent_queues`: a synthetic RESTORE pair.
            let rlog = self.sessions[s].items[idx].log_name(Queue::Restore);
            self.master_line(
                s,
                (pid, child),
                "start-item",
                Some(Queue::Restore),
                Some(idx),
                Some(json!({"size": size})),
            );
            self.master_line(
                s,
                (pid, child),
                "failed-item",
                Some(Queue::Restore),
                Some(idx),
                Some(json!({"failure": message, "size": size})),
            );
            self.sessions[s].logs.item_create(&rlog);
            self.sessions[s]
                .logs
                .item_append(&rlog, &out_line(pid, message));
            self.sessions[s].logs.item_complete(&rlog);
        }
        self.sessions[s].items[idx].failure = Some(message.to_string());
        self.release_worker(s, idx);
        self.set_item_state(s, idx, ItemState::Failed);
    }

    /// All workers have exited: the end of `_process_child`.
    fn finish_master(&mut self, s: usize) {
        let Some(m) = self.sessions[s].master.as_ref() else {
            return;
        };
        let pid = m.pid;
        let exits: Vec<Exit> = m
            .transfer
            .iter()
            .chain(&m.restore)
            .filter_map(|w| w.exited)
            .collect();
        let has_aborted = exits.contains(&Exit::Aborted);
        let has_paused = exits.contains(&Exit::Paused);
        let sess = &self.sessions[s];
        if has_aborted && sess.is_aborted() {
            self.master_line(s, (pid, 0), "abort", None, None, None);
            self.mark_aborted(s);
            self.sessions[s].master = None;
        } else if has_paused && sess.is_paused() {
            self.master_line(s, (pid, 0), "pause", None, None, None);
            self.sessions[s].master = None;
            let sess = &mut self.sessions[s];
            sess.pause_marker = Marker::Done;
            sess.state = SessionState::Paused;
        } else {
            self.master_line(s, (pid, 0), "complete", None, None, None);
            self.sessions[s].master = None;
            self.mark_completed(s);
            self.sessions[s].state = SessionState::Completed;
            self.sessions[s].finished_at = Some(self.now);
        }
    }

    /// `mark_session_completed`: markers removed, passwords nulled, logs renamed.
    pub(crate) fn mark_completed(&mut self, s: usize) {
        let sess = &mut self.sessions[s];
        sess.pause_marker = Marker::None;
        if sess.abort_marker == Marker::Active {
            sess.abort_marker = Marker::None;
        }
        sess.credentials_cleared = true;
        sess.options.retain(|k, _| !k.contains("pass"));
        sess.logs.complete_master();
    }

    /// `mark_session_aborted`.
    pub(crate) fn mark_aborted(&mut self, s: usize) {
        if !self.sessions[s].alive() {
            self.offline_line(s, "abort");
        }
        self.mark_completed(s);
        let sess = &mut self.sessions[s];
        sess.abort_marker = Marker::Done;
        sess.state = SessionState::Aborted;
        sess.finished_at = Some(self.now);
    }

    /// `mark_session_failed`.
    pub(crate) fn mark_failed(&mut self, s: usize) {
        if !self.sessions[s].alive() {
            self.offline_line(s, "fail");
        }
        self.mark_completed(s);
        let sess = &mut self.sessions[s];
        sess.state = SessionState::Failed;
        sess.finished_at = Some(self.now);
    }

    /// Fork a master (`Processor::start` → `_process_child`).
    pub(crate) fn spawn_master(&mut self, s: usize, resume: bool) -> u32 {
        let pid = self.new_pid();
        let total = self.sessions[s].items.len() as u32;
        let total_size = self.sessions[s].total_size();
        let (tt, rt) = (
            self.sessions[s].transfer_threads.clamp(1, 9).min(total),
            self.sessions[s].restore_threads.clamp(1, 9).min(total),
        );
        let mut master = Master {
            pid,
            transfer: Vec::new(),
            restore: Vec::new(),
        };
        for c in 1..=tt {
            let wpid = self.new_pid();
            master.transfer.push(Worker {
                child_number: c,
                pid: wpid,
                busy: None,
                exited: None,
            });
        }
        for c in 1..=rt {
            let wpid = self.new_pid();
            master.restore.push(Worker {
                child_number: c,
                pid: wpid,
                busy: None,
                exited: None,
            });
        }
        self.sessions[s].logs.reopen_master();
        if resume {
            self.master_line(s, (pid, 0), "resume", None, None, None);
        } else {
            let initiator = match self.sessions[s].kind {
                Kind::Root => "copyacct",
                Kind::User => "norootcopy",
            };
            self.master_line(s, (pid, 0), "start", None, None, None);
            self.master_line(s, (pid, 0), "initiator", None, None, Some(initiator.into()));
            self.master_line(s, (pid, 0), "version", None, None, Some("2.3".into()));
            if total > 0 {
                for q in [Queue::Transfer, Queue::Restore] {
                    self.master_line(
                        s,
                        (pid, 0),
                        "queue_count",
                        Some(q),
                        None,
                        Some(total.into()),
                    );
                    self.master_line(
                        s,
                        (pid, 0),
                        "queue_size",
                        Some(q),
                        None,
                        Some(total_size.into()),
                    );
                }
            }
        }
        let host = self.sessions[s].host.clone();
        self.master_line(s, (pid, 0), "remotehost", None, None, Some(host.into()));
        let sess = &mut self.sessions[s];
        sess.master = Some(master);
        sess.pid = Some(pid);
        if sess.started_at.is_none() {
            sess.started_at = Some(self.now);
        }
        sess.finished_at = None;
        self.pump();
        pid
    }

    /// An abort reached a live session: TERM its workers in one simulated second.
    pub(crate) fn signal_abort(&mut self, s: usize) {
        let sess = &mut self.sessions[s];
        sess.abort_gen += 1;
        let generation = sess.abort_gen;
        self.schedule(self.now + 1.0, Ev::AbortTerm { s, generation });
    }

    /// Workers' TERM handler: the current item fails with `Aborted.`.
    fn term_workers(&mut self, s: usize) {
        let busy: Vec<usize> = self.sessions[s]
            .master
            .as_ref()
            .map(|m| {
                m.transfer
                    .iter()
                    .chain(&m.restore)
                    .filter_map(|w| w.busy)
                    .collect()
            })
            .unwrap_or_default();
        for idx in busy {
            if let Some((q, w)) = self.sessions[s].items[idx].worker {
                self.sessions[s].items[idx].token += 1;
                self.sessions[s].items[idx].outcome = None;
                self.item_failed(s, idx, q, w, "Aborted.");
            }
        }
    }

    /// `crash_at`: every master and worker dies. Sessions keep their state
    /// (stale); items in progress stay in progress or fail (`crash_leaves`).
    fn crash(&mut self) {
        self.crashes += 1;
        for s in 0..self.sessions.len() {
            let Some(m) = self.sessions[s].master.take() else {
                continue;
            };
            let busy: Vec<usize> = m
                .transfer
                .iter()
                .chain(&m.restore)
                .filter_map(|w| w.busy)
                .collect();
            for idx in busy {
                let it = &mut self.sessions[s].items[idx];
                it.token += 1;
                it.outcome = None;
                it.worker = None;
                release_slot_and_mutex(it, &mut self.restores_busy, &mut self.restoring);
                if self.faults.crash_leaves == CrashLeaves::Failed {
                    let was_restoring = it.state == ItemState::RestoreInprogress;
                    it.failure = Some("The transfer process died.".into());
                    it.pid = 0;
                    if was_restoring && modules::is_account(it.module.name) {
                        let lu = it.localuser.clone();
                        self.accounts.entry(lu).or_default().restores_failed += 1;
                    }
                    self.set_item_state(s, idx, ItemState::Failed);
                }
            }
        }
    }

    /// Crash every transfer process now (`POST /__sim/crash`).
    pub(crate) fn crash_now(&mut self) {
        self.crash();
        self.pump();
    }

    /// `expunge_expired_transfer_sessions`.
    fn maintenance(&mut self) {
        for s in 0..self.sessions.len() {
            let sess = &self.sessions[s];
            if sess.deleted {
                continue;
            }
            let age = self.now - sess.created_at;
            let idle = self.now - sess.last_activity;
            if age > MAX_SESSION_AGE || (sess.state == SessionState::Pending && age > MAX_IDLE_TIME)
            {
                let id = sess.id.clone();
                self.sessions[s].deleted = true;
                self.index.remove(&id);
            } else if matches!(sess.state, SessionState::Running | SessionState::Pausing)
                && idle > MAX_IDLE_TIME
            {
                // A live master would see FAILED at its next periodic check and stop.
                if let Some(m) = self.sessions[s].master.take() {
                    for idx in m.transfer.iter().chain(&m.restore).filter_map(|w| w.busy) {
                        self.sessions[s].items[idx].token += 1;
                    }
                }
                self.mark_failed(s);
            }
        }
    }
}

fn release_slot_and_mutex(it: &mut Item, busy: &mut usize, restoring: &mut HashSet<String>) {
    if it.holds_slot {
        it.holds_slot = false;
        *busy -= 1;
    }
    if it.holds_mutex {
        it.holds_mutex = false;
        restoring.remove(&it.localuser);
    }
}

/// `{size, warnings, skipped_items, …, contents:{…}, message|failure}`.
fn summary(size: u64, warnings: &[String], failure: Option<&str>, message: Option<&str>) -> Value {
    let mut v = json!({
        "size": size,
        "warnings": warnings.len(),
        "skipped_items": 0,
        "dangerous_items": 0,
        "altered_items": 0,
        "contents": {"warnings": warnings, "skipped_items": [], "dangerous_items": [], "altered_items": []},
    });
    if let Some(f) = failure {
        v["failure"] = f.into();
    }
    if let Some(m) = message {
        v["message"] = m.into();
    }
    v
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
        }
    }
}
