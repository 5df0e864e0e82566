//! The scenario file of `whm-sim` (design §6): what the target server has,
//! which remote (source) servers it can reach, and which faults it injects.
//!
//! Every struct refuses unknown keys, so a misspelt fault is an error rather
//! than a quietly fault-free rehearsal. Sizes and rates are written as `50MB`
//! (decimal units: kB/KB, MB, GB, TB; binary: KiB, MiB, GiB, TiB; a bare
//! number is bytes). Times (`crash_at`, `maintenance_interval`) are simulated
//! seconds.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A scenario could not be read or is inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The YAML did not parse into a scenario (unknown key, wrong type, …).
    #[error("invalid scenario: {0}")]
    Parse(String),
    /// The scenario parsed but one of its values is out of range.
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

/// A byte count, written `50MB`, `1.5GiB` or `1234` in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

impl Size {
    pub const MB: u64 = 1_000_000;

    /// Parse `50MB`, `2 GiB`, `1234` (bytes).
    pub fn parse(text: &str) -> Result<Size, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("“{text}” is not a size such as 50MB"))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "kB" | "KB" | "K" => 1_000,
            "MB" | "M" => 1_000_000,
            "GB" | "G" => 1_000_000_000,
            "TB" | "T" => 1_000_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            other => return Err(format!("unknown size unit “{other}” in “{text}”")),
        };
        let bytes = value * mult as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(format!("size “{text}” is out of range"));
        }
        Ok(Size(bytes.round() as u64))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1_000_000_000_000, "TB"),
            (1_000_000_000, "GB"),
            (1_000_000, "MB"),
            (1_000, "kB"),
        ];
        for (mult, unit) in UNITS {
            if self.0 >= mult && self.0.is_multiple_of(mult) {
                return write!(f, "{}{}", self.0 / mult, unit);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.to_string().parse::<u64>().is_ok() {
            s.serialize_u64(self.0)
        } else {
            s.serialize_str(&self.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Size(n)),
            Raw::Text(t) => Size::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Whether the simulator serves plain HTTP or HTTPS with a generated CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    #[default]
    None,
    SelfSigned,
}

/// An API token the target accepts (`Authorization: whm USER:TOKEN`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    pub user: String,
    pub token: String,
}

/// The whole scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// The target's hostname (used in the certificate and in analysis answers).
    pub hostname: String,
    pub tls: TlsMode,
    pub tokens: Vec<TokenSpec>,
    /// Real seconds per simulated second: 0.001 makes one simulated hour pass in 3.6 s.
    pub time_scale: f64,
    /// Unix time of simulated second 0 (session ids and `master.log` times);
    /// default: the real time when the server starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    pub target: TargetSpec,
    pub remotes: Vec<RemoteSpec>,
    pub faults: FaultSpec,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            hostname: "target.example.net".into(),
            tls: TlsMode::None,
            tokens: vec![TokenSpec {
                user: "root".into(),
                token: "s3cret".into(),
            }],
            time_scale: 1.0,
            epoch: None,
            target: TargetSpec::default(),
            remotes: Vec::new(),
            faults: FaultSpec::default(),
        }
    }
}

/// The target server itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetSpec {
    /// Account restores running at once across all sessions of the target.
    pub max_restores: usize,
    /// Bytes restored per simulated second, per restore.
    pub restore_rate: Size,
    /// Accounts present on the target before anything is transferred.
    pub existing_accounts: Vec<ExistingAccount>,
    /// Packages present on the target before anything is transferred.
    pub existing_packages: Vec<String>,
    /// Run WHM's nightly maintenance (`expunge_expired_transfer_sessions`)
    /// every this many simulated seconds: RUNNING/PAUSING sessions idle for
    /// 4 h become FAILED, PENDING sessions older than 4 h are deleted.
    /// Default: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_interval: Option<f64>,
    /// false: `nvset` and `nvget` answer like functions the server does not
    /// have ("Unknown app"). Default true.
    #[serde(skip_serializing_if = "is_true")]
    pub nvdata: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Default for TargetSpec {
    fn default() -> Self {
        TargetSpec {
            max_restores: 4,
            restore_rate: Size(25 * Size::MB),
            existing_accounts: Vec::new(),
            existing_packages: Vec::new(),
            maintenance_interval: None,
            nvdata: true,
        }
    }
}

/// An account the target already has: a bare name or the full record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExistingAccount {
    Name(String),
    Full(ExistingAccountSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExistingAccountSpec {
    pub user: String,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

impl ExistingAccount {
    pub fn spec(&self) -> ExistingAccountSpec {
        match self {
            ExistingAccount::Name(n) => ExistingAccountSpec {
                user: n.clone(),
                owner: root(),
                package: None,
                domain: None,
            },
            ExistingAccount::Full(s) => s.clone(),
        }
    }
}

fn root() -> String {
    "root".into()
}

/// A source server the target can reach over SSH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSpec {
    /// The name given as `host` to `create_remote_root_transfer_session`.
    pub host: String,
    /// Another name the remote answers to (an IP address, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The credentials the remote accepts; absent: any credentials are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshSpec>,
    /// Bytes copied per simulated second, per transferring item.
    #[serde(default = "default_transfer_rate")]
    pub transfer_rate: Size,
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default)]
    pub accounts: Vec<AccountSpec>,
    /// When set, the analysis run by `create_remote_root_transfer_session`
    /// fails with this message: the session row exists (PENDING) but its id is
    /// not returned, as on a real server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_error: Option<String>,
    /// The cPanel & WHM version the remote runs (`/usr/local/cpanel/version`),
    /// as the remote analysis reports it. Default `11.120.0.16`.
    #[serde(
        default = "default_version",
        skip_serializing_if = "is_default_version"
    )]
    pub version: String,
    /// Whether the remote analysis reports live transfers as supported
    /// (`supports_live_transfers`); false refuses `live_transfer=1` items.
    /// Default true.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub supports_live_transfers: bool,
}

/// The version whm-sim's remotes (and the target) run by default.
pub const DEFAULT_VERSION: &str = "11.120.0.16";

fn default_version() -> String {
    DEFAULT_VERSION.to_string()
}

fn is_default_version(v: &str) -> bool {
    v == DEFAULT_VERSION
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_transfer_rate() -> Size {
    Size(50 * Size::MB)
}

impl RemoteSpec {
    /// A remote with the default transfer rate that accepts any credentials.
    pub fn new(host: impl Into<String>) -> RemoteSpec {
        RemoteSpec {
            host: host.into(),
            ip: None,
            ssh: None,
            transfer_rate: default_transfer_rate(),
            packages: Vec::new(),
            accounts: Vec::new(),
            analysis_error: None,
            version: default_version(),
            supports_live_transfers: true,
        }
    }
}

/// SSH credentials a remote accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSpec {
    #[serde(default = "root")]
    pub user: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sshkey_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sshkey_passphrase: Option<String>,
    /// For a non-root `user` escalating with `su`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_password: Option<String>,
}

fn default_port() -> u16 {
    22
}

/// An account on a remote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default = "default_size")]
    pub size: Size,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(default = "root")]
    pub owner: String,
    /// The account's cPanel password (for `create_remote_user_transfer_session`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Warnings its restore reports: the RESTORE line becomes `warning-item`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Files (inodes) the account uses; default `size / 50kB + 10`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// The account has a dedicated IP address on the remote.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dedicated_ip: bool,
    /// Its MySQL databases (full names such as `shop_wp`); each has a
    /// database user of the same name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
    /// Its addon domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addon_domains: Vec<String>,
    /// Suspended on the remote: the target restores it suspended.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspended: bool,
}

fn default_size() -> Size {
    Size(50 * Size::MB)
}

impl AccountSpec {
    pub fn new(user: impl Into<String>) -> AccountSpec {
        let user = user.into();
        AccountSpec {
            domain: Some(format!("{user}.example.com")),
            user,
            size: default_size(),
            package: None,
            owner: root(),
            password: None,
            warnings: Vec::new(),
            files: None,
            dedicated_ip: false,
            databases: Vec::new(),
            addon_domains: Vec::new(),
            suspended: false,
        }
    }

    /// The main domain (`USER.example.com` when the scenario gives none).
    pub fn main_domain(&self) -> String {
        self.domain
            .clone()
            .unwrap_or_else(|| format!("{}.example.com", self.user))
    }

    /// Disk used as the remote's quota reports it: whole KiB, rounded up.
    pub fn kib_used(&self) -> u64 {
        self.size.0.div_ceil(1024)
    }

    /// Files used: `files`, or `size / 50kB + 10`.
    pub fn files_used(&self) -> u64 {
        self.files.unwrap_or(self.size.0 / 50_000 + 10)
    }
}

/// What a leftover item looks like after `crash_at` killed its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashLeaves {
    /// As the source reads (docs/whm.md §4.2): the item stays
    /// TRANSFER_INPROGRESS / RESTORE_INPROGRESS forever; after a restart, a
    /// TRANSFER_INPROGRESS orphan keeps the RESTORE workers waiting forever.
    #[default]
    InProgress,
    /// Forgiving variant: the item is marked FAILED (as if the master had
    /// reaped its worker), so a restart completes.
    Failed,
}

/// In which queue a `fail_items` fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailStage {
    Transfer,
    #[default]
    Restore,
}

/// One entry of `faults.fail_items`, keyed by the remote user name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailItem {
    pub message: String,
    /// How many attempts fail before one succeeds.
    #[serde(default = "one")]
    pub times: u32,
    #[serde(default)]
    pub stage: FailStage,
}

fn one() -> u32 {
    1
}

/// One entry of `faults.restore_loses`, keyed by the remote user name: what
/// its restore cannot bring over. Each is absent on the target afterwards
/// and named in a warning of the restore's summary.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreLoss {
    /// Databases (names as in the account's `databases`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
    /// Addon domains (the main domain cannot be lost).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
}

/// One entry of `faults.restore_summary`, keyed by the remote user name:
/// texts its restore reports in the summary (making it a `warning-item`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreSummary {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub altered: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dangerous: Vec<String>,
}

/// Injected faults (design §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSpec {
    pub seed: u64,
    /// Fraction of API requests answered with HTTP 500 (never applied).
    pub http_500: f64,
    /// Fraction whose connection is closed without an answer (half before, half after applying).
    pub reset: f64,
    /// Fraction never answered (half before, half after applying) until the
    /// client gives up or `hang_max_secs` real seconds pass.
    pub hang: f64,
    /// Extra latency per API request, uniform in [min, max] real milliseconds.
    pub latency_ms: [u64; 2],
    pub fail_items: BTreeMap<String, FailItem>,
    /// true: `fetch_transfer_session_log` on a log still being written blocks
    /// until the log completes (docs/whm.md §10, fourth question).
    pub log_blocking: bool,
    /// Simulated seconds at which every transfer process dies.
    pub crash_at: Vec<f64>,
    pub crash_leaves: CrashLeaves,
    /// Upper bound, in real seconds, of a `hang` and of a blocked log fetch
    /// (`log_blocking`); then the connection is closed unanswered.
    pub hang_max_secs: f64,
    /// Databases and domains a restore loses, by remote user.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub restore_loses: BTreeMap<String, RestoreLoss>,
    /// Skipped, altered and dangerous items a restore reports, by remote user.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub restore_summary: BTreeMap<String, RestoreSummary>,
}

impl Default for FaultSpec {
    fn default() -> Self {
        FaultSpec {
            seed: 0,
            http_500: 0.0,
            reset: 0.0,
            hang: 0.0,
            latency_ms: [0, 0],
            fail_items: BTreeMap::new(),
            log_blocking: false,
            crash_at: Vec::new(),
            crash_leaves: CrashLeaves::InProgress,
            hang_max_secs: 300.0,
            restore_loses: BTreeMap::new(),
            restore_summary: BTreeMap::new(),
        }
    }
}

impl FaultSpec {
    pub(crate) fn validate(&self) -> Result<(), ScenarioError> {
        for (name, v) in [
            ("http_500", self.http_500),
            ("reset", self.reset),
            ("hang", self.hang),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(format!(
                    "faults.{name} must be a fraction between 0 and 1, not {v}"
                )));
            }
        }
        if self.http_500 + self.reset + self.hang > 1.0 {
            return Err(invalid(
                "faults.http_500 + reset + hang must not exceed 1".into(),
            ));
        }
        if self.latency_ms[0] > self.latency_ms[1] {
            return Err(invalid("faults.latency_ms must be [min, max]".into()));
        }
        if self.crash_at.iter().any(|t| !t.is_finite() || *t < 0.0) {
            return Err(invalid(
                "faults.crash_at lists simulated seconds (>= 0)".into(),
            ));
        }
        if !(self.hang_max_secs.is_finite() && self.hang_max_secs >= 0.0) {
            return Err(invalid("faults.hang_max_secs must be >= 0".into()));
        }
        Ok(())
    }
}

fn invalid(msg: String) -> ScenarioError {
    ScenarioError::Invalid(msg)
}

impl Scenario {
    /// Parse and check a scenario file.
    pub fn from_yaml(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario =
            serde_saphyr::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The scenario as YAML that [`Scenario::from_yaml`] reads back.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_else(|e| format!("# cannot serialise: {e}\n"))
    }

    /// A rehearsal scenario: a fault-free target with one token, remotes that
    /// accept any credentials, and a time scale at which a simulated hour
    /// passes in 3.6 real seconds. `ferry apply --simulate` maps a plan's
    /// sources to `remotes` (every account and package of the plan present).
    pub fn rehearsal(
        hostname: &str,
        token_user: &str,
        token: &str,
        remotes: Vec<RemoteSpec>,
    ) -> Scenario {
        Scenario {
            hostname: hostname.to_string(),
            tokens: vec![TokenSpec {
                user: token_user.to_string(),
                token: token.to_string(),
            }],
            time_scale: 0.001,
            remotes,
            ..Scenario::default()
        }
    }

    /// Check value ranges and uniqueness.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(invalid(format!(
                "time_scale must be a positive number of real seconds per simulated second, not {}",
                self.time_scale
            )));
        }
        if self.tokens.is_empty() {
            return Err(invalid("tokens: list at least one API token".into()));
        }
        if self.target.max_restores == 0 {
            return Err(invalid("target.max_restores must be at least 1".into()));
        }
        if self.target.restore_rate.0 == 0 {
            return Err(invalid("target.restore_rate must be positive".into()));
        }
        if let Some(m) = self.target.maintenance_interval
            && !(m.is_finite() && m > 0.0)
        {
            return Err(invalid(
                "target.maintenance_interval must be positive".into(),
            ));
        }
        let mut hosts = std::collections::BTreeSet::new();
        for r in &self.remotes {
            if !hosts.insert(r.host.as_str()) {
                return Err(invalid(format!("remote “{}” is listed twice", r.host)));
            }
            if r.transfer_rate.0 == 0 {
                return Err(invalid(format!(
                    "remote “{}”: transfer_rate must be positive",
                    r.host
                )));
            }
            let mut users = std::collections::BTreeSet::new();
            for a in &r.accounts {
                if !users.insert(a.user.as_str()) {
                    return Err(invalid(format!(
                        "remote “{}”: account “{}” is listed twice",
                        r.host, a.user
                    )));
                }
            }
        }
        self.faults.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        assert_eq!(Size::parse("50MB").unwrap(), Size(50_000_000));
        assert_eq!(Size::parse("1.5GB").unwrap(), Size(1_500_000_000));
        assert_eq!(Size::parse("2 MiB").unwrap(), Size(2 * 1024 * 1024));
        assert_eq!(Size::parse("1234").unwrap(), Size(1234));
        assert!(Size::parse("5 parsecs").is_err());
        assert!(Size::parse("MB").is_err());
        assert_eq!(Size(25_000_000).to_string(), "25MB");
    }

    #[test]
    fn design_example_parses() {
        let text = r#"
hostname: target.example.net
tls: none
tokens: [{user: root, token: s3cret}]
time_scale: 0.01
target: {max_restores: 8, restore_rate: 25MB, existing_accounts: [taken]}
remotes:
  - host: old1.example.com
    ssh: {user: root, password: pw1}
    transfer_rate: 50MB
    packages: [package1]
    accounts:
      - {user: example, domain: example.com, size: 50MB, package: package1, owner: root}
faults:
  seed: 7
  http_500: 0.05
  reset: 0.02
  hang: 0.01
  latency_ms: [0, 20]
  fail_items: {example: {message: "Disk quota exceeded", times: 1}}
  log_blocking: false
  crash_at: [120]
"#;
        let s = Scenario::from_yaml(text).unwrap();
        assert_eq!(s.target.max_restores, 8);
        assert_eq!(s.remotes[0].accounts[0].size, Size(50_000_000));
        assert_eq!(s.faults.fail_items["example"].times, 1);
        assert_eq!(
            s.target.existing_accounts[0],
            ExistingAccount::Name("taken".into())
        );
        let again = Scenario::from_yaml(&s.to_yaml()).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Scenario::from_yaml("faults: {http500: 0.1}\n").is_err());
        assert!(Scenario::from_yaml("time_scale: 0\n").is_err());
        assert!(Scenario::from_yaml("faults: {reset: 1.5}\n").is_err());
        let e = Scenario::from_yaml("remotes: [{host: a}, {host: a}]\n").unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
    }
}
