//! The session machine's tests: every (state, input) pair, snapshotted, and
//! the cases worth naming.
use super::*;

const W: Duration = Duration::from_secs(60);

const STATES: [SState; 11] = [
    SState::Creating,
    SState::Enqueuing,
    SState::Starting,
    SState::Running,
    SState::Pausing,
    SState::Paused,
    SState::Aborting,
    SState::Ended,
    SState::Finished,
    SState::Abandoned,
    SState::Detached,
];

fn server_states() -> Vec<SessionState> {
    SessionState::NAMES
        .into_iter()
        .chain(["TRANSFER_INPROGRESS"])
        .map(SessionState::from_name)
        .collect()
}

fn running(now: Instant) -> SessionMachine {
    let mut m = SessionMachine::new("old1/s1", SState::Creating, now, W);
    m.on(Input::Created, now).unwrap();
    m.on(Input::EnqueuedAll, now).unwrap();
    m.on(Input::Started { pid: 100 }, now).unwrap();
    assert_eq!(m.state(), SState::Running);
    m
}

/// Every (state, input) pair, under each thing the run may want: the
/// whole table, as one reviewed snapshot (`snapshots/…every_state_and_input.snap`).
/// A change to any decision shows there, row by row.
#[test]
fn every_state_and_input() {
    let servers = server_states();
    let mut inputs: Vec<Input<'_>> = vec![
        Input::Created,
        Input::EnqueuedAll,
        Input::Started { pid: 100 },
        Input::Started { pid: 200 },
        Input::Want(Want::Pause),
        Input::Want(Want::Abort),
        Input::Abandoned,
        Input::Concluded,
        Input::Detached,
    ];
    inputs.extend(servers.iter().map(Input::Server));
    let mut table = String::new();
    for want in [Want::Run, Want::Pause, Want::Abort] {
        for state in STATES {
            for input in &inputs {
                let now = Instant::now();
                let mut m = SessionMachine::new("k", state, now, W);
                m.set_pid(Some(100));
                m.want = want;
                m.last_alive = Some(now);
                let out = match m.on(*input, now) {
                    Ok(step) => format!("{:?} {step:?}", m.state()),
                    Err(u) => {
                        assert_eq!((u.state, u.input.clone()), (state, input.to_string()));
                        "unlisted".to_string()
                    }
                };
                // Terminal states absorb every input.
                if state.is_terminal() {
                    assert!(
                        out == format!("{state:?} Nothing"),
                        "{state:?} + {input} → {out}"
                    );
                }
                table.push_str(&format!("{want:?} | {state:?} | {input} → {out}\n"));
            }
        }
    }
    insta::assert_snapshot!(table);
}

#[test]
fn normal_life() {
    let now = Instant::now();
    let mut m = running(now);
    let completed = SessionState::Completed;
    assert_eq!(
        m.on(Input::Server(&SessionState::Running), now),
        Ok(Step::Poll)
    );
    assert_eq!(m.on(Input::Server(&completed), now), Ok(Step::Conclude));
    assert_eq!(m.state(), SState::Ended);
    m.on(Input::Concluded, now).unwrap();
    // Terminal states absorb late inputs.
    assert_eq!(
        m.on(Input::Server(&SessionState::Running), now),
        Ok(Step::Nothing)
    );
    assert_eq!(m.on(Input::Want(Want::Abort), now), Ok(Step::Nothing));
    assert_eq!(m.state(), SState::Finished);
}

#[test]
fn start_intent_without_effect_starts_again() {
    let now = Instant::now();
    let mut m = SessionMachine::new("k", SState::Starting, now, W);
    assert_eq!(
        m.on(Input::Server(&SessionState::Pending), now),
        Ok(Step::Start)
    );
    // A recovered session, enqueued who knows how far: enqueue first.
    let mut m = SessionMachine::new("k", SState::Starting, now, W);
    m.set_fully_enqueued(false);
    assert_eq!(
        m.on(Input::Server(&SessionState::Pending), now),
        Ok(Step::Enqueue)
    );
    assert_eq!(m.state(), SState::Enqueuing);
}

#[test]
fn paused_session_is_resumed_unless_the_run_pauses() {
    let now = Instant::now();
    let paused = SessionState::Paused;
    let mut m = SessionMachine::new("k", SState::Starting, now, W);
    assert_eq!(m.on(Input::Server(&paused), now), Ok(Step::Start));
    let mut m = SessionMachine::new("k", SState::Starting, now, W);
    assert_eq!(m.on(Input::Want(Want::Pause), now), Ok(Step::Nothing));
    assert_eq!(m.on(Input::Server(&paused), now), Ok(Step::StopWatching));
    assert_eq!(m.state(), SState::Paused);
}

#[test]
fn never_pause_a_session_not_seen_alive() {
    let t0 = Instant::now();
    let mut m = running(t0);
    let later = t0 + Duration::from_secs(600);
    // Last sighting (the start) is 10 min old: prove it alive first.
    assert_eq!(m.on(Input::Want(Want::Pause), later), Ok(Step::Start));
    assert_eq!(m.state(), SState::Running);
    // The start answered with the same pid: alive, pause now.
    m.on(Input::Started { pid: 100 }, later).unwrap();
    assert_eq!(
        m.on(Input::Server(&SessionState::Running), later),
        Ok(Step::Pause)
    );
    assert_eq!(m.state(), SState::Pausing);
    assert_eq!(
        m.on(Input::Server(&SessionState::Paused), later),
        Ok(Step::StopWatching)
    );
}

#[test]
fn pause_of_a_live_session_is_sent_at_once() {
    let t0 = Instant::now();
    let mut m = running(t0);
    m.on_progress(t0 + Duration::from_secs(1));
    let t = |s| t0 + Duration::from_secs(s);
    assert_eq!(m.on(Input::Want(Want::Pause), t(2)), Ok(Step::Pause));
    // Abort overrides a pause; a pause never lowers an abort.
    assert_eq!(m.on(Input::Want(Want::Abort), t(3)), Ok(Step::Abort));
    assert_eq!(m.on(Input::Want(Want::Pause), t(3)), Ok(Step::Nothing));
    assert_eq!(m.state(), SState::Aborting);
    assert_eq!(
        m.on(Input::Server(&SessionState::Aborting), t0),
        Ok(Step::Poll)
    );
    assert_eq!(
        m.on(Input::Server(&SessionState::Aborted), t0),
        Ok(Step::Conclude)
    );
}

#[test]
fn unstarted_sessions_on_pause_and_abort() {
    let now = Instant::now();
    let mut m = SessionMachine::new("k", SState::Enqueuing, now, W);
    assert_eq!(m.on(Input::Want(Want::Pause), now), Ok(Step::StopWatching));
    assert_eq!(m.state(), SState::Paused);
    let mut m = SessionMachine::new("k", SState::Enqueuing, now, W);
    assert_eq!(m.on(Input::Want(Want::Abort), now), Ok(Step::Abort));
    assert_eq!(
        m.on(Input::Server(&SessionState::Failed), now),
        Ok(Step::Conclude)
    );
}

#[test]
fn unlisted_pairs_name_state_and_input() {
    let now = Instant::now();
    let mut m = running(now);
    let err = m
        .on(Input::Server(&SessionState::Pending), now)
        .unwrap_err();
    assert_eq!(err.state, SState::Running);
    assert!(err.to_string().contains("PENDING"), "{err}");
    let err = m.on(Input::Created, now).unwrap_err();
    assert!(err.to_string().contains("created"), "{err}");
}

#[test]
fn stalls_count_strikes_until_progress() {
    let t0 = Instant::now();
    let mut m = running(t0);
    let st = Duration::from_secs(30);
    assert_eq!(m.on_tick(t0 + Duration::from_secs(10), st), None);
    let s1 = m.on_tick(t0 + Duration::from_secs(31), st).unwrap();
    assert_eq!((s1.strikes, s1.evidence), (1, false));
    m.on_log_read();
    let s2 = m.on_tick(t0 + Duration::from_secs(62), st).unwrap();
    assert_eq!((s2.strikes, s2.evidence), (2, true));
    m.on_progress(t0 + Duration::from_secs(63));
    let s3 = m.on_tick(t0 + Duration::from_secs(100), st).unwrap();
    assert_eq!(s3.strikes, 1);
    // A restarted stale session (new pid) gets a fresh window.
    m.on(Input::Started { pid: 200 }, t0 + Duration::from_secs(100))
        .unwrap();
    assert_eq!(m.on_tick(t0 + Duration::from_secs(110), st), None);
}

/// The stall remedy table, row by row.
#[test]
fn stall_remedies() {
    let now = Instant::now();
    let m = running(now);
    let stall = |strikes, evidence| Stall {
        idle: Duration::from_secs(60),
        strikes,
        evidence,
    };
    assert_eq!(m.remedy(&stall(1, true), Some(false)), Remedy::Restart);
    assert_eq!(m.remedy(&stall(2, false), Some(false)), Remedy::Restart);
    assert_eq!(
        m.remedy(&stall(2, true), Some(false)),
        Remedy::AbortAndReplace
    );
    assert_eq!(m.remedy(&stall(2, true), Some(true)), Remedy::Escalate);
    assert_eq!(m.remedy(&stall(5, false), None), Remedy::Escalate);
    let mut p = running(now);
    p.on(Input::Want(Want::Pause), now).unwrap();
    assert_eq!(p.state(), SState::Pausing);
    assert_eq!(p.remedy(&stall(2, false), None), Remedy::Detach);
}
