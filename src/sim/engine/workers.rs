//! The worker model: what a worker does at the top of its loop (pause and
//! abort checks, the type barrier, `priority`/key order, prerequisites), how
//! long each step takes and how it ends, and the target's restore slots.

use serde_json::{Value, json};

use super::*;

impl World {
    /// `dequeue_next_item` for one queue: Some(item) to fetch, or whether the
    /// worker is blocked (true) or its queue is empty (false).
    pub(super) fn dequeue(&self, s: usize, q: Queue) -> Result<usize, bool> {
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
    pub(super) fn needs_slot(&self, s: usize, idx: usize) -> bool {
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
    pub(super) fn pump_session(&mut self, s: usize) -> bool {
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

    pub(super) fn worker_exit(&mut self, s: usize, q: Queue, w: usize, code: Exit) {
        if let Some(m) = self.sessions[s].master.as_mut() {
            m.workers_mut(q)[w].exited = Some(code);
        }
    }

    /// Grant free restore slots, oldest RESTORE_PENDING first across sessions.
    pub(super) fn grant_restore_slots(&mut self) -> bool {
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
    pub(super) fn start_item(&mut self, s: usize, q: Queue, w: usize, idx: usize) {
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
        self.sessions[s].items[idx].restore_ran = false;
        let (dur, outcome) = match q {
            Queue::Transfer => self.plan_transfer(s, idx),
            Queue::Restore => self.plan_restore(s, idx),
        };
        self.sessions[s].items[idx].outcome = Some(outcome);
        self.schedule_step_lines(s, idx, q, dur);
        let it = &mut self.sessions[s].items[idx];
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

    pub(super) fn account_spec(
        &self,
        s: usize,
        idx: usize,
    ) -> Option<&crate::sim::scenario::AccountSpec> {
        let key = &self.sessions[s].items[idx].key;
        self.remote(s)?.accounts.iter().find(|a| &a.user == key)
    }

    pub(super) fn take_fail(&mut self, user: &str, stage: FailStage) -> Option<String> {
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
    pub(super) fn plan_transfer(&mut self, s: usize, idx: usize) -> (f64, Outcome) {
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
                    (1.0, Outcome::done())
                } else {
                    (
                        1.0,
                        Outcome::Failure(format!(
                            "The package “{key}” does not exist on “{host}”."
                        )),
                    )
                }
            }
            "FeatureListRemoteRoot" => (1.0, Outcome::done()),
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
                    None => (dur, Outcome::done()),
                }
            }
        }
    }

    /// How long the RESTORE step of an item takes and how it ends; takes a
    /// restore slot and the local user's restore mutex for accounts.
    pub(super) fn plan_restore(&mut self, s: usize, idx: usize) -> (f64, Outcome) {
        let module = self.sessions[s].items[idx].module;
        if !modules::is_account(module.name) {
            return (0.0, Outcome::done());
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
        // `skipaccount`: restore into the existing account (docs/whm.md §6).
        let skipaccount = self.sessions[s].items[idx]
            .params
            .get("skipaccount")
            .is_some_and(|v| v == "1");
        if !skipaccount && self.accounts.get(&localuser).is_some_and(|a| a.present) {
            return (
                0.0,
                Outcome::Failure(format!(
                    "A user named “{localuser}” already exists on this server."
                )),
            );
        }
        self.sessions[s].items[idx].restore_ran = true;
        let size = self.account_spec(s, idx).map_or(50_000_000, |a| a.size.0);
        let dur = size as f64 / self.scenario.target.restore_rate.0 as f64;
        match self.take_fail(&key, FailStage::Restore) {
            Some(msg) => (dur, Outcome::Failure(msg)),
            None => {
                let (summary, lost) = self.plan_summary(s, idx);
                (
                    dur,
                    Outcome::Success {
                        summary: Some(summary),
                        lost,
                    },
                )
            }
        }
    }

    /// What a successful account restore will report: the remote account's
    /// `warnings`, what `faults.restore_loses` takes away and what
    /// `faults.restore_summary` adds (the owner's fallback is added at the end).
    fn plan_summary(&self, s: usize, idx: usize) -> (Summary, RestoreLoss) {
        let key = &self.sessions[s].items[idx].key;
        let unrestricted = self.sessions[s]
            .options
            .get("unrestricted_restore")
            .is_some_and(|v| v == "1");
        let mode = if unrestricted {
            "unrestricted_restore"
        } else {
            "restricted_restore"
        };
        let mut sum = Summary::default();
        // whm-sim: the scenario's and the faults' texts come from no module
        let injected = |t: &String| Summary::entry("whm-sim", "scenario", 0, t);
        if let Some(a) = self.account_spec(s, idx) {
            sum.warnings.extend(a.warnings.iter().map(injected));
        }
        let lost = self
            .faults
            .restore_loses
            .get(key)
            .cloned()
            .unwrap_or_default();
        for db in &lost.databases {
            // `Systems/Mysql.pm` (the error part is whm-sim's)
            let text = format!(
                "The system cannot restore the MySQL database “{db}” because of an error: The archive’s dump of this database is damaged."
            );
            sum.warnings
                .push(Summary::entry("Mysql", mode, 1122, &text));
        }
        for d in &lost.domains {
            // `Systems/Domains.pm`'s text (the reason is whm-sim's); cPanel
            // files it under skipped_items, whm-sim warns, as its faults say
            let text =
                format!("Failed to restore the domain “{d}”: The domain could not be created.");
            sum.warnings
                .push(Summary::entry("Domains", mode, 525, &text));
        }
        if let Some(extra) = self.faults.restore_summary.get(key) {
            sum.skipped.extend(extra.skipped.iter().map(injected));
            sum.altered.extend(extra.altered.iter().map(injected));
            sum.dangerous.extend(extra.dangerous.iter().map(injected));
        }
        (sum, lost)
    }

    /// The scheduled end of an item's step.
    pub(super) fn finish_item(&mut self, s: usize, idx: usize) {
        let Some((q, w)) = self.sessions[s].items[idx].worker else {
            return;
        };
        let outcome = self.sessions[s].items[idx]
            .outcome
            .take()
            .unwrap_or(Outcome::Failure("Internal code error".into()));
        match outcome {
            Outcome::Success { summary, lost } => self.item_succeeded(s, idx, q, w, summary, lost),
            Outcome::Failure(msg) => self.item_failed(s, idx, q, w, &msg),
        }
    }

    pub(super) fn worker_ids(&self, s: usize, q: Queue, w: usize) -> (u32, u32) {
        self.sessions[s].master.as_ref().map_or((0, 0), |m| {
            let wk = &m.workers(q)[w];
            (wk.pid, wk.child_number)
        })
    }

    pub(super) fn release_worker(&mut self, s: usize, idx: usize) {
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

    pub(super) fn item_succeeded(
        &mut self,
        s: usize,
        idx: usize,
        q: Queue,
        w: usize,
        summary: Option<Summary>,
        lost: RestoreLoss,
    ) {
        let (pid, child) = self.worker_ids(s, q, w);
        let size = self.sessions[s].items[idx].row_size;
        let account_restore =
            q == Queue::Restore && modules::is_account(self.sessions[s].items[idx].module.name);
        let mut summary = summary;
        if account_restore {
            let skipped = self.account_restored(s, idx, &lost);
            if let (Some(sum), Some(e)) = (summary.as_mut(), skipped) {
                sum.skipped.push(e);
            }
            self.live_transfer_done(s, idx);
        }
        let clean = Summary::default();
        let sum = summary.as_ref().unwrap_or(&clean);
        let msg = item_msg(size, sum, None, Some("Done"));
        // `Processor.pm`: any warning, skipped, dangerous or altered item
        let action = if sum.is_clean() {
            "success-item"
        } else {
            "warning-item"
        };
        self.finish_step_lines(s, idx, q, None, summary.as_ref());
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
                self.set_item_state(s, idx, ItemState::Completed);
            }
        }
    }

    /// The account is on the target now, without what the restore `lost`.
    /// Returns the skipped item a restricted restore reports when the owner
    /// had to fall back to root.
    pub(super) fn account_restored(
        &mut self,
        s: usize,
        idx: usize,
        lost: &RestoreLoss,
    ) -> Option<Value> {
        let spec = self.account_spec(s, idx).cloned();
        let it = &self.sessions[s].items[idx];
        let localuser = it.localuser.clone();
        let domain = it
            .params
            .get("domain")
            .cloned()
            .or_else(|| spec.as_ref().and_then(|a| a.domain.clone()));
        let unrestricted = self.sessions[s]
            .options
            .get("unrestricted_restore")
            .is_some_and(|v| v == "1");
        let wanted_owner = spec
            .as_ref()
            .map_or("root".to_string(), |a| a.owner.clone());
        // `Whostmgr/Transfers/Systems.pm::new_owner`: the account is created
        // for its owner only when that reseller exists on the target (restored
        // before it, or there already); otherwise for the caller, root, and a
        // restricted restore reports it as a skipped item. (In an unrestricted
        // restore, `Systems/CpUser.pm` would then write the archive's OWNER
        // back; whm-sim keeps root, the strict reading.)
        let mut skipped = None;
        let owner = if wanted_owner == "root"
            || self.accounts.get(&wanted_owner).is_some_and(|a| a.present)
        {
            wanted_owner
        } else {
            if !unrestricted {
                let text = format!(
                    "The user, “{wanted_owner}”, that owns the account in this backup is not a reseller on this system. Because of this, “root” will own this restored account instead."
                );
                skipped = Some(Summary::entry("Systems", "new_owner", 182, &text));
            }
            "root".to_string()
        };
        let now = self.now;
        let unix_now = self.unix_now();
        let uid = self.next_uid;
        let rec = self.accounts.entry(localuser).or_default();
        rec.restores_completed += 1;
        rec.present = true;
        rec.owner = Some(owner);
        if rec.uid == 0 {
            rec.uid = uid;
            self.next_uid += 1;
        }
        if let Some(a) = &spec {
            rec.databases = a
                .databases
                .iter()
                .filter(|d| !lost.databases.contains(d))
                .cloned()
                .collect();
            rec.addon_domains = a
                .addon_domains
                .iter()
                .filter(|d| !lost.domains.contains(d))
                .cloned()
                .collect();
            rec.kib_used = a.kib_used();
            rec.files_used = a.files_used();
            // `Systems/Suspend.pm`: a suspended source account is suspended
            // again; without a reason in the archive, "Transfer/Restore"
            rec.suspended = a.suspended;
            rec.suspend_reason = a.suspended.then(|| "Transfer/Restore".to_string());
            rec.suspend_time = if a.suspended { unix_now } else { 0 };
        }
        rec.archives = 1;
        rec.package = spec.and_then(|a| a.package);
        rec.domain = domain;
        rec.restored_at = Some(now);
        skipped
    }

    /// A restore with `live_transfer` completed: the source account is
    /// suspended and proxied to the target.
    fn live_transfer_done(&mut self, s: usize, idx: usize) {
        let it = &self.sessions[s].items[idx];
        let live = it
            .params
            .get("live_transfer")
            .is_some_and(|v| !v.is_empty() && v != "0");
        let (Some(remote), true) = (self.remote(s), live) else {
            return;
        };
        let key = (remote.host.clone(), it.key.clone());
        let src = self.remote_accounts.entry(key).or_default();
        src.suspended = true;
        // `S/Constants.pm $USER_TRANSFERRED_MESSAGE`
        src.suspend_reason = Some("User transferred to another server".into());
        src.proxied = true;
    }

    pub(super) fn item_failed(&mut self, s: usize, idx: usize, q: Queue, w: usize, message: &str) {
        let (pid, child) = self.worker_ids(s, q, w);
        let size = self.sessions[s].items[idx].row_size;
        // a restore that ran and then failed still writes its (empty) summary
        let it = &self.sessions[s].items[idx];
        let summary =
            (q == Queue::Restore && it.restore_ran && modules::is_account(it.module.name))
                .then(Summary::default);
        self.finish_step_lines(s, idx, q, Some(message), summary.as_ref());
        let msg = item_msg(size, &Summary::default(), Some(message), None);
        self.master_line(
            s,
            (pid, child),
            "failed-item",
            Some(q),
            Some(idx),
            Some(msg),
        );
        if q == Queue::Restore && modules::is_account(self.sessions[s].items[idx].module.name) {
            let lu = self.sessions[s].items[idx].localuser.clone();
            self.accounts.entry(lu).or_default().restores_failed += 1;
        }
        if q == Queue::Transfer {
            // `_mark_item_failed_in_subsequent_queues`: a synthetic RESTORE pair.
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
            self.synthetic_restore_log(s, idx, pid, message);
        }
        self.sessions[s].items[idx].failure = Some(message.to_string());
        self.release_worker(s, idx);
        self.set_item_state(s, idx, ItemState::Failed);
    }
}

pub(super) fn release_slot_and_mutex(
    it: &mut Item,
    busy: &mut usize,
    restoring: &mut HashSet<String>,
) {
    if it.holds_slot {
        it.holds_slot = false;
        *busy -= 1;
    }
    if it.holds_mutex {
        it.holds_mutex = false;
        restoring.remove(&it.localuser);
    }
}

/// A `success-item`/`warning-item`/`failed-item` line's `msg`
/// (`Processor.pm::_process_dequeued_item`): `{size, warnings,
/// skipped_items, dangerous_items, altered_items (counts), contents:{…the
/// summary's lists}, message|failure}`.
fn item_msg(size: u64, sum: &Summary, failure: Option<&str>, message: Option<&str>) -> Value {
    let mut v = json!({
        "size": size,
        "warnings": sum.warnings.len(),
        "skipped_items": sum.skipped.len(),
        "dangerous_items": sum.dangerous.len(),
        "altered_items": sum.altered.len(),
        "contents": sum.lists(),
    });
    if let Some(f) = failure {
        v["failure"] = f.into();
    }
    if let Some(m) = message {
        v["message"] = m.into();
    }
    v
}
