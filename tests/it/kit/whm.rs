//! Test kit for whm-sim: start the simulator in-process, call WHM API 1 over
//! real HTTP, and check every request and answer against the parameter and
//! response rules in `tests/fixtures/whm-transfers.params.json`.
//!
//! Every `Whm::call`/`get` answer is checked as it arrives; `Sim::finish`
//! checks every request the simulator recorded (`/__sim/requests`), except
//! those sent with `Whm::misuse` (tagged `nonconformant`: the refusal tests
//! send malformed requests on purpose), and fails the test on any violation.
//! Other areas' end-to-end tests can call `request_violations` on the
//! simulator's `/__sim/requests` after running ferry against it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry::sim::{Scenario, SimServer};
use serde_json::{Value, json};

pub use super::TOKEN;

/// The project's copy of the parameter and response rules.
pub fn rules() -> Value {
    serde_json::from_str(include_str!("../../fixtures/whm-transfers.params.json"))
        .expect("the rules fixture is JSON")
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A small scenario: one remote `old1.example.com` (root password `pw1`)
/// with `n` accounts `u000…` of `size` bytes, a package `pkg1`, fast time.
pub fn scenario(n: usize, size: u64) -> Scenario {
    let mut remote = ferry::sim::RemoteSpec::new("old1.example.com");
    remote.ssh = Some(ferry::sim::SshSpec {
        user: "root".into(),
        port: 22,
        password: Some("pw1".into()),
        sshkey_name: None,
        sshkey_passphrase: None,
        root_password: None,
    });
    remote.packages = vec!["pkg1".into()];
    for i in 0..n {
        let mut a = ferry::sim::AccountSpec::new(format!("u{i:03}"));
        a.size = ferry::sim::Size(size);
        a.package = Some("pkg1".into());
        remote.accounts.push(a);
    }
    Scenario {
        time_scale: 0.001,
        remotes: vec![remote],
        ..Scenario::default()
    }
}

pub struct Sim {
    pub server: SimServer,
    pub whm: Whm,
}

impl Sim {
    pub async fn start(scenario: Scenario) -> Sim {
        install_crypto();
        let ca = scenario.tls == ferry::sim::TlsMode::SelfSigned;
        let server = SimServer::start(scenario).await.expect("whm-sim starts");
        let whm = Whm::new(
            server.base_url(),
            if ca { server.ca_pem() } else { None },
            Some(format!("whm root:{TOKEN}")),
        );
        Sim { server, whm }
    }

    pub fn state(&self) -> Value {
        self.server.state()
    }

    /// Check every recorded request and every answer received, then stop.
    pub async fn finish(self) {
        let requests = self.whm.inspect("requests").await;
        let rules = rules();
        let mut problems = self.whm.violations.lock().unwrap().clone();
        for r in requests.as_array().expect("requests is a list") {
            if r["tag"] == "nonconformant" {
                continue;
            }
            problems.extend(request_violations(&rules, r));
        }
        self.server.shutdown().await;
        assert!(
            problems.is_empty(),
            "conformance violations:\n{}",
            problems.join("\n")
        );
    }

    /// Poll `get_transfer_session_state` until it is one of `wanted`.
    pub async fn wait_state(&self, id: &str, wanted: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.whm.state_name(id).await;
            if wanted.contains(&st.as_str()) {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "session {id} stayed {st}, wanted {wanted:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Wait until `/__sim/state` satisfies `pred`.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.state();
            if pred(&st) {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {st:#}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A WHM API 1 client for tests.
#[derive(Clone)]
pub struct Whm {
    pub base: String,
    pub client: reqwest::Client,
    pub auth: Option<String>,
    pub violations: Arc<Mutex<Vec<String>>>,
}

impl Whm {
    pub fn new(base: &str, ca_pem: Option<&str>, auth: Option<String>) -> Whm {
        install_crypto();
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(pem) = ca_pem {
            b = b.tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()]);
        }
        Whm {
            base: base.to_string(),
            client: b.build().unwrap(),
            auth,
            violations: Arc::default(),
        }
    }

    pub fn url(&self, function: &str, query: &[(&str, &str)]) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("api.version", "1");
        for (k, v) in query {
            q.append_pair(k, v);
        }
        format!("{}/json-api/{function}?{}", self.base, q.finish())
    }

    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, url);
        if let Some(a) = &self.auth {
            r = r.header("Authorization", a);
        }
        r
    }

    async fn envelope(&self, function: &str, resp: reqwest::Response) -> Value {
        assert_eq!(resp.status(), 200, "{function}: HTTP status");
        let v: Value = resp.json().await.expect("a JSON envelope");
        let problems = response_violations(function, &v);
        self.violations.lock().unwrap().extend(problems);
        v
    }

    /// POST with a form body (`api.version=1` in the query string).
    pub async fn call(&self, function: &str, params: &[(&str, &str)]) -> Value {
        let resp = self
            .request(reqwest::Method::POST, self.url(function, &[]))
            .form(params)
            .send()
            .await
            .expect("request sent");
        self.envelope(function, resp).await
    }

    /// GET with the parameters in the query string.
    pub async fn get(&self, function: &str, params: &[(&str, &str)]) -> Value {
        let resp = self
            .request(reqwest::Method::GET, self.url(function, params))
            .send()
            .await
            .expect("request sent");
        self.envelope(function, resp).await
    }

    /// A deliberately malformed request (exempt from the request rules; its
    /// answer is still checked).
    pub async fn misuse(&self, function: &str, params: &[(&str, &str)]) -> Value {
        let resp = self
            .request(reqwest::Method::POST, self.url(function, &[]))
            .header("X-Whm-Sim-Tag", "nonconformant")
            .form(params)
            .send()
            .await
            .expect("request sent");
        self.envelope(function, resp).await
    }

    pub async fn inspect(&self, what: &str) -> Value {
        self.client
            .get(format!("{}/__sim/{what}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    // ----- the transfer workflow -------------------------------------------

    pub async fn create_root(&self, host: &str, password: &str, threads: (u32, u32)) -> Value {
        let (t, r) = (threads.0.to_string(), threads.1.to_string());
        self.call(
            "create_remote_root_transfer_session",
            &[
                ("host", host),
                ("user", "root"),
                ("password", password),
                ("transfer_threads", &t),
                ("restore_threads", &r),
                ("unrestricted_restore", "1"),
                ("copy_reseller_privs", "0"),
                ("compressed", "0"),
                ("unencrypted", "0"),
                ("low_priority", "0"),
            ],
        )
        .await
    }

    /// A root session on old1.example.com (password pw1): its id.
    pub async fn session(&self, threads: (u32, u32)) -> String {
        let v = self.create_root("old1.example.com", "pw1", threads).await;
        assert_eq!(v["metadata"]["result"], 1, "{v:#}");
        v["data"]["transfer_session_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn enqueue(&self, id: &str, module: &str, extra: &[(&str, &str)]) -> Value {
        let mut p = vec![("transfer_session_id", id), ("module", module)];
        p.extend_from_slice(extra);
        self.call("enqueue_transfer_item", &p).await
    }

    pub async fn enqueue_account(&self, id: &str, user: &str, extra: &[(&str, &str)]) -> Value {
        let mut p = vec![("user", user), ("localuser", user)];
        p.extend_from_slice(extra);
        self.enqueue(id, "AccountRemoteRoot", &p).await
    }

    pub async fn start(&self, id: &str) -> Value {
        self.call("start_transfer_session", &[("transfer_session_id", id)])
            .await
    }

    pub async fn state_name(&self, id: &str) -> String {
        let v = self
            .get("get_transfer_session_state", &[("transfer_session_id", id)])
            .await;
        assert_eq!(v["metadata"]["result"], 1, "{v:#}");
        v["data"]["state_name"].as_str().unwrap().to_string()
    }

    pub async fn pause(&self, id: &str) -> Value {
        self.call("pause_transfer_session", &[("transfer_session_id", id)])
            .await
    }

    pub async fn abort(&self, id: &str) -> Value {
        self.call("abort_transfer_session", &[("transfer_session_id", id)])
            .await
    }

    pub async fn log(&self, id: &str, file: &str) -> Value {
        self.get(
            "fetch_transfer_session_log",
            &[("transfer_session_id", id), ("logfile", file)],
        )
        .await
    }

    /// master.log as a list of `contents` objects.
    pub async fn master_log(&self, id: &str) -> Vec<Value> {
        let v = self.log(id, "master.log").await;
        assert_eq!(v["metadata"]["result"], 1, "{v:#}");
        v["data"]["log"]
            .as_str()
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["contents"].clone())
            .collect()
    }
}

/// The final (RESTORE) result line of each item in a master.log.
pub fn results(log: &[Value]) -> Vec<(String, String)> {
    log.iter()
        .filter(|c| {
            c["queue"] == "RESTORE"
                && matches!(
                    c["action"].as_str(),
                    Some("success-item" | "warning-item" | "failed-item")
                )
        })
        .map(|c| {
            (
                c["item"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn ok(v: &Value) -> bool {
    v["metadata"]["result"] == 1
}

pub fn reason(v: &Value) -> String {
    v["metadata"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Strip the `(XID abcdef) ` part of a reason, wherever it is.
pub fn without_xid(reason: &str) -> String {
    let re = regex::Regex::new(r"\(XID [a-z0-9]{6}\) ").unwrap();
    re.replace_all(reason, "").into_owned()
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn enum_allows(allowed: &Value, value: &str) -> bool {
    allowed.as_array().is_some_and(|a| {
        a.iter().any(|x| match x {
            Value::String(s) => s == value || s.starts_with("or "),
            Value::Number(n) => n.to_string() == value,
            _ => false,
        })
    })
}

/// Violations of the request rules by one `/__sim/requests` record.
pub fn request_violations(rules: &Value, rec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let f = rec["function"].as_str().unwrap_or_default();
    let idx = &rec["index"];
    let mut bad = |m: String| out.push(format!("request #{idx} {f}: {m}"));
    let Some(rule) = rules["functions"].get(f) else {
        bad("not a function of the rules".into());
        return out;
    };
    let query_keys = str_list(&rec["query_keys"]);
    let body_keys = str_list(&rec["body_keys"]);
    if !query_keys.iter().any(|k| k == "api.version") {
        bad("api.version is not in the query string".into());
    }
    if rec["params"]["api.version"] != "1" {
        bad("api.version is not 1".into());
    }
    if rec["auth_user"].is_null() {
        bad("not authenticated with `Authorization: whm USER:TOKEN`".into());
    }
    let params = rec["params"].as_object().cloned().unwrap_or_default();
    let mut known: Vec<String> = ["api.version"].iter().map(|s| s.to_string()).collect();
    let mut required = str_list(&rule["required"]);
    known.extend(required.clone());
    known.extend(str_list(&rule["optional"]));
    known.extend(str_list(&rule["documented_required_but_omitted_in_guide"]));
    for section in ["enums", "defaults", "ranges"] {
        if let Some(o) = rule[section].as_object() {
            known.extend(o.keys().cloned());
        }
    }
    let mut enums = rule["enums"].clone();
    let mut ranges = rule["ranges"].clone();
    if f == "enqueue_transfer_item" {
        if rec["method"] != "POST" || body_keys.is_empty() {
            bad("enqueue_transfer_item takes an application/x-www-form-urlencoded body".into());
        }
        let module = params
            .get("module")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match rule["modules"].get(module) {
            None => bad(format!("module {module:?} is not in the rules")),
            Some(m) => {
                known.retain(|k| k == "api.version" || k == "transfer_session_id" || k == "module");
                required.extend(str_list(&m["required"]));
                known.extend(str_list(&m["required"]));
                known.extend(str_list(&m["optional"]));
                known.extend(str_list(&m["source_only_optional"]));
                if let Some(e) = m["enums"].as_object() {
                    for (k, v) in e {
                        enums[k] = v.clone();
                    }
                }
                if module.starts_with("Account") {
                    let p = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_string);
                    if p("customip").is_some() && p("ip").as_deref() != Some("1") {
                        bad("customip requires ip=1".into());
                    }
                    for k in ["force", "skipaccount"] {
                        if p(k).as_deref() == Some("1") && p("user") != p("localuser") {
                            bad(format!("{k} requires user == localuser"));
                        }
                    }
                }
            }
        }
        if !module.starts_with("Account") {
            ranges = json!({"size": rules["functions"][f]["ranges"]["size"]});
        }
    }
    for k in &required {
        if !params.contains_key(k) {
            bad(format!("required parameter {k:?} missing"));
        }
    }
    let patterns: Vec<regex::Regex> = str_list(&rule["param_patterns"])
        .iter()
        .filter_map(|p| regex::Regex::new(p).ok())
        .collect();
    for k in params.keys() {
        if !known.contains(k) && !patterns.iter().any(|p| p.is_match(k)) {
            bad(format!("unknown parameter {k:?}"));
        }
    }
    for (k, v) in &params {
        let Some(v) = v.as_str() else { continue };
        if v == "[redacted]" {
            continue;
        }
        if let Some(allowed) = enums.get(k)
            && !enum_allows(allowed, v)
        {
            bad(format!("{k}={v:?} is not one of {allowed}"));
        }
        if let Some(r) = ranges.get(k).filter(|r| r.is_object()) {
            match v.parse::<i64>() {
                Err(_) => bad(format!("{k}={v:?} is not an integer")),
                Ok(n) => {
                    if r["min"].as_i64().is_some_and(|m| n < m)
                        || r["max"].as_i64().is_some_and(|m| n > m)
                    {
                        bad(format!("{k}={n} is out of range {r}"));
                    }
                }
            }
        }
    }
    out
}

/// Violations of the envelope and response rules by one answer.
pub fn response_violations(function: &str, v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut bad = |m: String| out.push(format!("answer of {function}: {m}"));
    let md = &v["metadata"];
    if md["command"] != function {
        bad(format!("metadata.command is {}", md["command"]));
    }
    if md["version"] != 1 {
        bad(format!("metadata.version is {}", md["version"]));
    }
    if md["result"] != 0 && md["result"] != 1 {
        bad(format!("metadata.result is {}", md["result"]));
    }
    if !md["reason"].is_string() {
        bad("metadata.reason is not a string".into());
    }
    if let Some(w) = md["output"].get("warnings")
        && !w.is_array()
    {
        bad("metadata.output.warnings is not a list".into());
    }
    if let Some(d) = v.get("data")
        && !d.is_object()
    {
        bad("data is not an object".into());
    }
    if md["result"] == 0 {
        // the function returns its hash even when it fails (Whostmgr/API/1/Data/Wrapper.pm)
        let carries_data = matches!(function, "remote_basic_credential_check" | "accountsummary");
        if v.get("data").is_some() && !carries_data {
            bad("a failure carries data".into());
        }
        return out;
    }
    let d = &v["data"];
    let id_ok = |s: &Value| {
        s.as_str().is_some_and(|s| {
            s.len() == 36 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let is_01 = |x: &Value| x == 0 || x == 1;
    let fine = match function {
        "create_remote_root_transfer_session" => {
            id_ok(&d["transfer_session_id"])
                && d["create_rawout"].is_string()
                && d["analyze_rawout"].is_string()
        }
        "create_remote_user_transfer_session" => id_ok(&d["transfer_session_id"]),
        "start_transfer_session" => d["pid"].as_u64().is_some_and(|p| p >= 1),
        "get_transfer_session_state" => {
            let allowed = &rules()["functions"][function]["returns"]["state_name"];
            let s = d["state_name"].as_str().unwrap_or_default();
            enum_allows(allowed, s) || matches!(s, "PAUSING" | "ABORTING")
        }
        "fetch_transfer_session_log" => d["log"]
            .as_str()
            .is_some_and(|log| log.lines().all(log_line_ok)),
        "pause_transfer_session"
        | "abort_transfer_session"
        | "enqueue_transfer_item"
        | "analyze_transfer_session_remote" => v.get("data").is_none(),
        "retrieve_transfer_session_remote_analysis" => {
            [
                "transfer_session_id",
                "local",
                "remote",
                "modules",
                "options",
                "config",
            ]
            .iter()
            .all(|k| d.get(*k).is_some())
                && d["items"]["accounts"].as_array().is_some_and(|a| {
                    a.iter().all(|x| {
                        x["user"].is_string()
                            && x["bytesused"].as_u64().is_some_and(|b| b % 1024 == 0)
                            && x["filesused"].is_u64()
                            && is_01(&x["has_dedicated_ip"])
                            && x["worker_nodes"].is_object()
                            && x.get("size").is_none()
                    })
                })
                && d["items"]["packages"]
                    .as_array()
                    .is_some_and(|p| p.iter().all(|x| x["name"].is_string()))
                && is_01(&d["options"]["unrestricted"])
                && is_01(&d["config"]["shared_mysql_server"])
        }
        "remote_basic_credential_check" => d["output"].is_string() && d["response"].is_string(),
        "validate_system_user" => ["exists", "reserved", "valid_for_new", "valid_for_transfer"]
            .iter()
            .all(|k| is_01(&d[*k])),
        "available_transfer_modules" => d["modules"]
            .as_object()
            .is_some_and(|m| !m.is_empty() && m.values().all(Value::is_string)),
        "transfer_module_schema" => {
            let s = &d["schema"];
            s["keys"].is_object() && s["primary"].is_array() && s["required"].is_array()
        }
        "listaccts" | "accountsummary" => d["acct"]
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_object)),
        "get_domain_info" => d["domains"].as_array().is_some_and(|a| {
            a.iter().all(|x| {
                x["domain"].is_string()
                    && x["user"].is_string()
                    && matches!(
                        x["domain_type"].as_str(),
                        Some("main" | "addon" | "sub" | "parked")
                    )
            })
        }),
        "list_mysql_databases_and_users" => {
            d["mysql_databases"]
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_array))
                && d["mysql_config"].is_object()
        }
        "delete_account_archives" => v.get("data").is_none(),
        "nvset" => d["nvdatum"].as_array().is_some_and(|a| {
            a.iter()
                .all(|p| p["key"].is_string() && p["value"].is_string())
        }),
        "nvget" => {
            d["nvdatum"]["key"].is_string()
                && d["nvdatum"]["value"]
                    .as_array()
                    .is_some_and(|v| v.len() == 1 && (v[0].is_string() || v[0].is_null()))
        }
        _ => true,
    };
    if !fine {
        bad(format!("unexpected answer {v}"));
    }
    out
}

/// A master.log or item log line (`Cpanel/Output.pm`): a `control` message
/// (master.log's carry `child_number`; an item log's `percentage` and
/// `summary` do not), an `out` line, or an item's `start`, `success`,
/// `failed`, `warn` or `error` message (`{"msg": [text…]}`).
fn log_line_ok(line: &str) -> bool {
    let Ok(l) = serde_json::from_str::<Value>(line) else {
        return false;
    };
    let c = &l["contents"];
    let msg_list = |c: &Value| {
        c["msg"]
            .as_array()
            .is_some_and(|m| m.iter().all(Value::is_string))
    };
    if !l["pid"].is_u64() {
        return false;
    }
    match l["type"].as_str() {
        Some("control") => {
            c["action"].is_string()
                && c["time"].is_i64()
                && match c["action"].as_str() {
                    Some("percentage") => c["percentage"].as_u64().is_some_and(|p| p <= 100),
                    Some("summary") => [
                        "warnings",
                        "skipped_items",
                        "dangerous_items",
                        "altered_items",
                    ]
                    .iter()
                    .all(|k| c[*k].is_array()),
                    _ => c["child_number"].is_u64(),
                }
        }
        Some("out") => c.is_string() || msg_list(c),
        Some("start" | "success" | "failed" | "warn" | "error") => msg_list(c),
        _ => false,
    }
}
