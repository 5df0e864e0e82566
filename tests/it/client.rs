//! The WHM client (`ferry::client`) over real HTTP against whm-sim: every
//! call, a full session lifecycle, duplicate enqueues, faults and their
//! classification, auth refusal, TLS trust, and secret hygiene on the wire.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry::client::{
    AccountItem, Class, ClientConfig, CreateSession, CredentialCheck, Enqueued, ErrorKind,
    ItemOutcome, RetryPolicy, SessionId, SessionState, SshAuth, SshLogin, WhmClient, item_outcomes,
    master_finished, parse_master_log, retry_idempotent,
};
use ferry::secret::Secret;
use ferry::sim::{Scenario, SimServer};
use serde_json::Value;

/// Distinctive values, so a leak anywhere is found by a plain search.
const TOKEN: &str = "tok-Zx9q-client-test";
const SRC_PW: &str = "pw-Qq7r-client-test";
const SOURCE: &str = "old1.example.com";

fn scenario_yaml(extra: &str) -> Scenario {
    let yaml = format!(
        r#"
hostname: target.example.net
tokens: [{{user: root, token: {TOKEN}}}]
time_scale: 0.1
target: {{existing_accounts: [taken]}}
remotes:
  - host: {SOURCE}
    ssh: {{user: root, password: {SRC_PW}}}
    packages: [pkg1]
    accounts:
      - {{user: alpha, domain: alpha.example.com, size: 10MB, package: pkg1}}
      - {{user: beta, size: 10MB, package: pkg1}}
{extra}
"#
    );
    Scenario::from_yaml(&yaml).expect("scenario parses")
}

async fn start(s: Scenario) -> SimServer {
    ferry::client::tls::install_crypto_provider();
    SimServer::start(s).await.expect("whm-sim starts")
}

fn client(sim: &SimServer) -> WhmClient {
    client_with(sim, |_| {})
}

fn client_with(sim: &SimServer, tweak: impl FnOnce(&mut ClientConfig)) -> WhmClient {
    let mut cfg = ClientConfig::new(sim.base_url(), "root", Secret::new(TOKEN));
    tweak(&mut cfg);
    WhmClient::new(cfg).expect("client builds")
}

fn login(password: &str) -> SshLogin {
    SshLogin {
        user: "root".into(),
        port: 22,
        auth: SshAuth::Password(Secret::new(password)),
        escalation: None,
    }
}

fn create_req(password: &str) -> CreateSession {
    CreateSession {
        host: SOURCE.into(),
        ssh: login(password),
        transfer_threads: 2,
        restore_threads: 2,
        compressed: false,
        low_priority: false,
    }
}

fn account(user: &str, localuser: &str) -> AccountItem {
    AccountItem {
        user: user.into(),
        localuser: localuser.into(),
        size: Some(10_000_000),
        domain: None,
        priority: None,
        prerequisite_user: None,
        options: vec![("skipbwdata", "1".into())],
    }
}

async fn wait_for(c: &WhmClient, s: &SessionId, want: SessionState) -> SessionState {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = c.get_transfer_session_state(s).await.expect("state");
        if st == want {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "session {s} stayed {st}, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A tracing writer that keeps everything, to search it for secrets.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn full_session_lifecycle_over_http() {
    let logs = Captured::default();
    let w = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sim = start(scenario_yaml("")).await;
    let c = client(&sim);

    // Target: reachable, token accepted, the pre-existing account listed.
    let before = c.listaccts().await.unwrap();
    assert!(before.iter().any(|a| a.user == "taken"), "{before:?}");

    // Usernames.
    let taken = c.validate_system_user("taken").await.unwrap();
    assert!(taken.exists);
    let free = c.validate_system_user("beta2").await.unwrap();
    assert!(
        !free.exists && !free.reserved && free.valid_for_transfer,
        "{free:?}"
    );
    assert!(c.validate_system_user("root").await.unwrap().reserved);

    // Source credentials: right and wrong.
    c.remote_basic_credential_check(&CredentialCheck {
        host: SOURCE.into(),
        ssh: login(SRC_PW),
    })
    .await
    .unwrap();
    let bad = c
        .remote_basic_credential_check(&CredentialCheck {
            host: SOURCE.into(),
            ssh: login("wrong-password-xyz"),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.function, "remote_basic_credential_check");
    assert!(
        matches!(&bad.kind, ErrorKind::Whm { reason } if reason.contains("Permission denied")),
        "{bad}"
    );
    assert_eq!(bad.class(), Class::Permanent);
    assert!(!bad.to_string().contains("wrong-password-xyz"), "{bad}");

    // A session, analysed before it starts.
    let s = c
        .create_remote_root_transfer_session(&create_req(SRC_PW))
        .await
        .unwrap();
    assert!(s.as_str().starts_with("old1examplecocopya"), "{s}");
    assert_eq!(
        c.get_transfer_session_state(&s).await.unwrap(),
        SessionState::Pending
    );
    let analysis = c.analyze_remote(&s).await.unwrap();
    let users: Vec<_> = analysis.accounts.iter().map(|a| a.user.as_str()).collect();
    assert_eq!(users, ["alpha", "beta"]);
    assert_eq!(analysis.packages, ["pkg1"]);
    assert_eq!(
        analysis.accounts[0].domain.as_deref(),
        Some("alpha.example.com")
    );
    assert_eq!(analysis.accounts[0].plan.as_deref(), Some("pkg1"));
    // cPanel's fields: the quota figure in KiB × 1024 (10 MB = 9,766 KiB),
    // inodes, the dedicated-IP flag
    assert_eq!(analysis.accounts[0].bytes, Some(9766 * 1024));
    assert_eq!(analysis.accounts[0].files, Some(10_000_000 / 50_000 + 10));
    assert_eq!(analysis.accounts[0].dedicated_ip, Some(false));

    // Enqueue; a repeat is refused by WHM and reported as AlreadyQueued.
    assert_eq!(
        c.enqueue_package(&s, "pkg1").await.unwrap(),
        Enqueued::Added
    );
    assert_eq!(
        c.enqueue_package(&s, "pkg1").await.unwrap(),
        Enqueued::AlreadyQueued
    );
    assert_eq!(
        c.enqueue_account(&s, &account("alpha", "alpha"))
            .await
            .unwrap(),
        Enqueued::Added
    );
    let mut beta = account("beta", "beta2");
    beta.domain = Some("beta.example.com".into());
    beta.priority = Some(10);
    assert_eq!(c.enqueue_account(&s, &beta).await.unwrap(), Enqueued::Added);
    assert_eq!(
        c.enqueue_account(&s, &account("alpha", "alpha"))
            .await
            .unwrap(),
        Enqueued::AlreadyQueued
    );

    // Start; starting again is safe and gives the same pid.
    let pid = c.start_transfer_session(&s).await.unwrap();
    assert!(pid > 0);
    assert_eq!(c.start_transfer_session(&s).await.unwrap(), pid);

    wait_for(&c, &s, SessionState::Completed).await;

    // Outcomes come from master.log, never from the state alone.
    let log = c
        .fetch_transfer_session_log(&s, "master.log", Duration::from_secs(10))
        .await
        .unwrap();
    let lines = parse_master_log(&log);
    assert_eq!(master_finished(&lines), Some("complete"));
    let out = item_outcomes(&lines);
    let key = |t: &str, i: &str| (t.to_string(), i.to_string());
    assert_eq!(out.len(), 3, "{out:?}");
    for k in [
        key("PackageRemoteRoot", "pkg1"),
        key("AccountRemoteRoot", "alpha"),
        key("AccountRemoteRoot", "beta"),
    ] {
        assert!(
            matches!(out.get(&k), Some(ItemOutcome::Succeeded { .. })),
            "{k:?}: {out:?}"
        );
    }
    let beta_line = lines
        .iter()
        .find(|l| l.item.as_deref() == Some("beta"))
        .unwrap();
    assert_eq!(beta_line.local_item.as_deref(), Some("beta2"));

    // The target now has the accounts, with their package.
    let after = c.listaccts().await.unwrap();
    let beta2 = after
        .iter()
        .find(|a| a.user == "beta2")
        .expect("beta2 restored");
    assert_eq!(beta2.plan.as_deref(), Some("pkg1"));
    assert!(after.iter().any(|a| a.user == "alpha"));
    assert!(c.validate_system_user("beta2").await.unwrap().exists);

    // Pause of a COMPLETED session is refused (permanent).
    let e = c.pause_transfer_session(&s).await.unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Whm { .. }), "{e}");
    assert_eq!(e.class(), Class::Permanent);

    // Abort of a PENDING session turns it FAILED.
    let s2 = c
        .create_remote_root_transfer_session(&create_req(SRC_PW))
        .await
        .unwrap();
    assert_ne!(s2, s);
    c.abort_transfer_session(&s2).await.unwrap();
    assert_eq!(
        c.get_transfer_session_state(&s2).await.unwrap(),
        SessionState::Failed
    );

    // An unknown (well-formed) session id: WHM's refusal, permanent.
    let ghost = SessionId::parse("nosuchsessioncopya20260101000000abcd").unwrap();
    let e = c.get_transfer_session_state(&ghost).await.unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Whm { .. }), "{e}");

    // A wrong source password at creation is WHM's refusal, without the password.
    let e = c
        .create_remote_root_transfer_session(&create_req("wrong-password-xyz"))
        .await
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Whm { .. }), "{e}");
    assert!(!e.to_string().contains("wrong-password-xyz"));

    // On the wire: only api.version in URLs; passwords only in POST bodies.
    let requests = sim.requests();
    let list = requests.as_array().unwrap();
    assert!(list.len() >= 20, "{}", list.len());
    for r in list {
        assert_eq!(r["method"], "POST", "{r}");
        assert_eq!(r["query_keys"], serde_json::json!(["api.version"]), "{r}");
        assert_eq!(r["auth_user"], "root", "{r}");
    }
    let body_keys = |f: &str| -> Vec<Vec<String>> {
        list.iter()
            .filter(|r| r["function"] == f)
            .map(|r| serde_json::from_value(r["body_keys"].clone()).unwrap())
            .collect()
    };
    for keys in body_keys("create_remote_root_transfer_session")
        .into_iter()
        .chain(body_keys("remote_basic_credential_check"))
    {
        assert!(keys.contains(&"password".to_string()), "{keys:?}");
    }
    let dump = requests.to_string();
    for secret in [TOKEN, SRC_PW, "wrong-password-xyz"] {
        assert!(!dump.contains(secret), "{secret} in /__sim/requests");
    }

    // Trace-level logs of client and simulator: no secret.
    drop(_guard);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("whm call ok"),
        "client logs at debug: {text:.400}"
    );
    for secret in [TOKEN, SRC_PW, "wrong-password-xyz"] {
        assert!(!text.contains(secret), "{secret} in trace logs");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn auth_refusal_is_classified_and_never_retried() {
    let sim = start(scenario_yaml("")).await;
    let mut cfg = ClientConfig::new(sim.base_url(), "root", Secret::new("not-the-token"));
    cfg.request_timeout = Duration::from_secs(5);
    let c = WhmClient::new(cfg).unwrap();
    let e = retry_idempotent(
        &RetryPolicy::no_delay(5),
        |_, _, _| panic!("an auth refusal must not be retried"),
        || c.listaccts(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AuthRefused { status: 401 });
    assert_eq!(e.class(), Class::Auth);
    assert!(!e.may_have_applied());
    assert!(!e.to_string().contains("not-the-token"), "{e}");
    let sent = sim
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["function"] == "listaccts")
        .count();
    assert_eq!(sent, 1, "exactly one attempt reached the server");
    sim.shutdown().await;
}

#[tokio::test]
async fn http_500_is_transient() {
    let sim = start(scenario_yaml("faults: {seed: 1, http_500: 1.0}")).await;
    let e = client(&sim).listaccts().await.unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Http { status: 500, .. }), "{e}");
    assert_eq!(e.class(), Class::Transient { retry_after: None });
    assert!(e.may_have_applied());
    sim.shutdown().await;
}

#[tokio::test]
async fn reset_is_connection_lost() {
    let sim = start(scenario_yaml("faults: {seed: 2, reset: 1.0}")).await;
    let c = client(&sim);
    for _ in 0..4 {
        let e = c.listaccts().await.unwrap_err();
        assert!(matches!(e.kind, ErrorKind::ConnectionLost(_)), "{e:?}");
        assert!(matches!(e.class(), Class::Transient { .. }));
        assert!(e.may_have_applied());
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn hang_is_a_timeout() {
    let sim = start(scenario_yaml(
        "faults: {seed: 3, hang: 1.0, hang_max_secs: 5}",
    ))
    .await;
    let c = client_with(&sim, |cfg| cfg.request_timeout = Duration::from_millis(300));
    let e = c.validate_system_user("alpha").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e:?}");
    assert!(matches!(e.class(), Class::Transient { .. }));
    assert!(e.may_have_applied());
    assert!(e.elapsed >= Duration::from_millis(250), "{:?}", e.elapsed);
    sim.shutdown().await;
}

#[tokio::test]
async fn retry_idempotent_recovers_from_faults() {
    let sim = start(scenario_yaml(
        "faults: {seed: 7, http_500: 0.25, reset: 0.2, hang: 0.1, hang_max_secs: 5}",
    ))
    .await;
    let c = client_with(&sim, |cfg| cfg.request_timeout = Duration::from_millis(300));
    let mut retries = 0;
    for _ in 0..15 {
        let accts = retry_idempotent(
            &RetryPolicy::no_delay(40),
            |_, e, _| {
                assert!(matches!(e.class(), Class::Transient { .. }), "{e}");
                retries += 1;
            },
            || c.listaccts(),
        )
        .await
        .expect("recovers within the attempts");
        assert!(accts.iter().any(|a| a.user == "taken"));
    }
    assert!(retries > 0, "the faults were exercised");
    sim.shutdown().await;
}

fn tls_scenario() -> Scenario {
    let mut s = scenario_yaml("");
    s.tls = ferry::sim::TlsMode::SelfSigned;
    s
}

#[tokio::test]
async fn tls_refused_without_the_ca() {
    let sim = start(tls_scenario()).await;
    assert!(sim.base_url().starts_with("https://"));
    let c = client(&sim);
    let e = c.listaccts().await.unwrap_err();
    let ErrorKind::Tls(msg) = &e.kind else {
        panic!("expected a TLS error, got {e:?}");
    };
    assert!(msg.contains(c.host()), "names the host: {msg}");
    assert!(msg.contains("target.tls.ca_file"), "names the fix: {msg}");
    assert!(msg.contains("insecure: true"), "{msg}");
    assert_eq!(e.class(), Class::Untrusted);
    assert!(!e.may_have_applied());
    // The handshake failed: no request reached the API.
    assert_eq!(sim.requests().as_array().unwrap().len(), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn tls_accepted_with_the_ca() {
    let sim = start(tls_scenario()).await;
    let ca = sim.ca_pem().expect("self_signed gives a CA").to_string();
    let c = client_with(&sim, |cfg| cfg.ca_pem = Some(ca));
    assert!(
        c.listaccts()
            .await
            .unwrap()
            .iter()
            .any(|a| a.user == "taken")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn tls_accepted_with_insecure() {
    let sim = start(tls_scenario()).await;
    let c = client_with(&sim, |cfg| cfg.insecure = true);
    assert!(
        c.listaccts()
            .await
            .unwrap()
            .iter()
            .any(|a| a.user == "taken")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_wrong_ca_is_refused() {
    // Two simulators generate two different CAs: trusting one does not
    // open the other.
    let a = start(tls_scenario()).await;
    let b = start(tls_scenario()).await;
    let ca_b = b.ca_pem().unwrap().to_string();
    let c = client_with(&a, |cfg| cfg.ca_pem = Some(ca_b));
    let e = c.listaccts().await.unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Tls(_)), "{e:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_non_whm_answer_is_permanent() {
    // The simulator's inspection endpoint is not WHM: pointing the client's
    // base URL at a path that answers something else gives Decode/Http, not
    // a panic or a false success.
    let sim = start(scenario_yaml("")).await;
    let mut cfg = ClientConfig::new(
        format!("{}/__sim/nowhere", sim.base_url()),
        "root",
        Secret::new(TOKEN),
    );
    cfg.request_timeout = Duration::from_secs(5);
    let c = WhmClient::new(cfg).unwrap();
    let e = c.listaccts().await.unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Http { .. } | ErrorKind::Decode(_)),
        "{e:?}"
    );
    assert_eq!(e.class(), Class::Permanent);
    let v: Value = sim.state();
    assert!(v.get("accounts").is_some());
    sim.shutdown().await;
}

/// A WHM host whose certificate is self-signed with `CA:TRUE` and used as
/// its own server certificate — what `openssl req -x509` makes by default
/// and what many WHM hosts present. webpki refuses such a certificate as an
/// end entity (`CaUsedAsEndEntity`) even when it is the trusted root, so the
/// client must accept a server that presents exactly the certificate of
/// `ca_file`. This server answers `listaccts` only.
async fn ca_true_self_signed_server() -> (String, String, axum_server::Handle<std::net::SocketAddr>)
{
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pem = cert.pem();
    let server_cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let app = axum::Router::new().route(
        "/json-api/listaccts",
        axum::routing::post(|| async {
            axum::Json(serde_json::json!({
                "metadata": {"command": "listaccts", "version": 1, "result": 1, "reason": "OK"},
                "data": {"acct": [{"user": "selfsigned", "domain": "s.example.com", "owner": "root", "plan": "default"}]}
            }))
        }),
    );
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        axum_server::bind_rustls(
            "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap(),
            axum_server::tls_rustls::RustlsConfig::from_config(std::sync::Arc::new(server_cfg)),
        )
        .handle(h)
        .serve(app.into_make_service())
        .await
        .unwrap();
    });
    let addr = handle.listening().await.expect("listening");
    (format!("https://127.0.0.1:{}", addr.port()), pem, handle)
}

#[tokio::test]
async fn a_self_signed_ca_true_certificate_given_as_ca_file_is_accepted() {
    ferry::client::tls::install_crypto_provider();
    let (url, pem, handle) = ca_true_self_signed_server().await;
    // Without it: refused.
    let c = WhmClient::new(ClientConfig::new(url.clone(), "root", Secret::new(TOKEN))).unwrap();
    assert!(matches!(
        c.listaccts().await.unwrap_err().kind,
        ErrorKind::Tls(_)
    ));
    // With it: accepted.
    let mut cfg = ClientConfig::new(url.clone(), "root", Secret::new(TOKEN));
    cfg.ca_pem = Some(pem);
    let c = WhmClient::new(cfg).unwrap();
    let accts = c
        .listaccts()
        .await
        .expect("the pinned certificate is accepted");
    assert_eq!(accts[0].user, "selfsigned");
    // Another CA:TRUE certificate does not open it.
    let (_, other_pem, other) = ca_true_self_signed_server().await;
    let mut cfg = ClientConfig::new(url, "root", Secret::new(TOKEN));
    cfg.ca_pem = Some(other_pem);
    let e = WhmClient::new(cfg).unwrap().listaccts().await.unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Tls(_)), "{e:?}");
    handle.shutdown();
    other.shutdown();
}

/// A plain HTTP server on 127.0.0.1 that answers every request with `status`
/// and `location`, counting the requests it gets.
async fn redirecting_server(
    status: u16,
    location: Option<String>,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let h = h.clone();
        let location = location.clone();
        async move {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut resp = axum::response::Response::new(axum::body::Body::empty());
            *resp.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
            if let Some(l) = location {
                resp.headers_mut()
                    .insert("location", axum::http::HeaderValue::from_str(&l).unwrap());
            }
            resp
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hits)
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (elsewhere, elsewhere_hits) = redirecting_server(200, None).await;
    let (url, hits) =
        redirecting_server(307, Some(format!("{elsewhere}/json-api/listaccts"))).await;
    let c = WhmClient::new(ClientConfig::new(url, "root", Secret::new(TOKEN))).unwrap();
    let e = c.listaccts().await.unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Http { status: 307, .. }),
        "{e:?}"
    );
    assert_eq!(e.class(), Class::Permanent);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        elsewhere_hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the token must not follow a redirect"
    );
}

#[tokio::test]
async fn retry_after_is_read_from_429_and_503() {
    for status in [429u16, 503] {
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        let app = axum::Router::new().fallback(move || {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("retry-after", "7")],
                    "slow down",
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let c = WhmClient::new(ClientConfig::new(url, "root", Secret::new(TOKEN))).unwrap();
        let e = c.listaccts().await.unwrap_err();
        assert_eq!(
            e.class(),
            Class::Transient {
                retry_after: Some(Duration::from_secs(7))
            },
            "{status}: {e:?}"
        );
        // The policy honours it (capped at max): 7 s here, not the 0-10 ms jitter.
        let p = RetryPolicy {
            attempts: 3,
            initial: Duration::from_millis(10),
            max: Duration::from_secs(60),
        };
        let retry_after = match e.class() {
            Class::Transient { retry_after } => retry_after,
            other => panic!("{other:?}"),
        };
        let d = p.delay(1, retry_after, &mut rand::rng());
        assert_eq!(d, Duration::from_secs(7));
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
