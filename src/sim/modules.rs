//! Transfer item modules: type ids (= processing order), primary keys and the
//! key schemas that `enqueue_transfer_item` validates against
//! (`S/Config.pm %ITEMTYPE_NAMES`, `S/Items/Schema/*.pm`).

/// The schema of a module's queue row.
#[derive(Debug)]
pub(crate) struct Schema {
    pub primary: &'static str,
    pub required: &'static [&'static str],
    /// Every valid key (required ones included).
    pub keys: &'static [&'static str],
    /// The key naming another item of the session that must go first.
    pub prerequisite: Option<&'static str>,
}

#[derive(Debug)]
pub(crate) struct Module {
    pub name: &'static str,
    pub type_id: u32,
    /// Localised name in `master.log` (`item_name`).
    pub item_name: &'static str,
    /// None: the module exists on WHM but whm-sim does not simulate it.
    pub schema: Option<&'static Schema>,
    /// Which session kind may enqueue it.
    pub session: SessionKindRule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionKindRule {
    RootOnly,
    UserOnly,
    Any,
}

/// `AccountBase.pm` keys plus the linked-node worker key `mail_location`.
const ACCOUNT_KEYS: &[&str] = &[
    "user",
    "size",
    "files",
    "priority",
    "localuser",
    "detected_remote_user",
    "domain",
    "customip",
    "replaceip",
    "prerequisite_user",
    "reseller",
    "force",
    "ip",
    "skiphomedir",
    "shared_mysql_server",
    "skipres",
    "skipacctdb",
    "skipbwdata",
    "skipaccount",
    "skipsubdomains",
    "skipemail",
    "overwrite_all_dbs",
    "overwrite_all_dbusers",
    "overwrite_sameowner_dbs",
    "overwrite_sameowner_dbusers",
    "xferpoint",
    "copypoint",
    "cpmovefile",
    "disabled",
    "overwrite_with_delete",
    "live_transfer",
    "keep_local_cpuser_values",
    "mail_location",
];

static ACCOUNT: Schema = Schema {
    primary: "user",
    required: &["user", "localuser"],
    keys: ACCOUNT_KEYS,
    prerequisite: Some("prerequisite_user"),
};
static PACKAGE: Schema = Schema {
    primary: "package",
    required: &["package"],
    keys: &["package", "size"],
    prerequisite: None,
};
static FEATURELIST: Schema = Schema {
    primary: "featurelist",
    required: &["featurelist"],
    keys: &["featurelist", "size"],
    prerequisite: None,
};
static ACCOUNT_LOCAL: Schema = Schema {
    primary: "user",
    required: &["user", "localuser"],
    keys: &["user", "localuser", "force", "size"],
    prerequisite: None,
};
static LEGACY_BACKUP: Schema = Schema {
    primary: "user",
    required: &["user", "restoretype"],
    keys: &["user", "restoretype", "size"],
    prerequisite: None,
};

use SessionKindRule::*;

pub(crate) static MODULES: &[Module] = &[
    m(
        "FeatureListRemoteRoot",
        1000,
        "Feature List",
        Some(&FEATURELIST),
        RootOnly,
    ),
    m("BackupsRemoteRoot", 1045, "Backups", None, RootOnly),
    m("EximRemoteRoot", 1050, "Exim", None, RootOnly),
    m("ThemesRemoteRoot", 1052, "Themes", None, RootOnly),
    m("ApacheRemoteRoot", 1054, "Apache", None, RootOnly),
    m("MySQLRemoteRoot", 1056, "MySQL", None, RootOnly),
    m(
        "WHMConfRemoteRoot",
        1058,
        "WHM Configuration",
        None,
        RootOnly,
    ),
    m("GreyListRemoteRoot", 1060, "Greylisting", None, RootOnly),
    m("HulkRemoteRoot", 1061, "cPHulk", None, RootOnly),
    m(
        "AutoSSLOptionsRemoteRoot",
        1062,
        "AutoSSL Options",
        None,
        RootOnly,
    ),
    m("ModSecurityRemoteRoot", 1070, "ModSecurity", None, RootOnly),
    m(
        "PackageRemoteRoot",
        2000,
        "Package",
        Some(&PACKAGE),
        RootOnly,
    ),
    m(
        "AccountRemoteRoot",
        3000,
        "Account",
        Some(&ACCOUNT),
        RootOnly,
    ),
    m(
        "AccountRemoteUser",
        4000,
        "Account",
        Some(&ACCOUNT),
        UserOnly,
    ),
    m("AccountLocal", 5000, "Account", Some(&ACCOUNT_LOCAL), Any),
    m(
        "LegacyAccountBackup",
        6000,
        "Account",
        Some(&LEGACY_BACKUP),
        Any,
    ),
    m("AccountUpload", 7000, "Account", None, Any),
    m("RearrangeAccount", 8000, "Account", None, Any),
    m("MailboxConversion", 9000, "Mailbox Conversion", None, Any),
];

const fn m(
    name: &'static str,
    type_id: u32,
    item_name: &'static str,
    schema: Option<&'static Schema>,
    session: SessionKindRule,
) -> Module {
    Module {
        name,
        type_id,
        item_name,
        schema,
        session,
    }
}

pub(crate) fn find(name: &str) -> Option<&'static Module> {
    MODULES.iter().find(|m| m.name == name)
}

/// Modules whose items whm-sim actually moves (the others fail at transfer time).
pub(crate) fn simulated(name: &str) -> bool {
    matches!(
        name,
        "FeatureListRemoteRoot" | "PackageRemoteRoot" | "AccountRemoteRoot" | "AccountRemoteUser"
    )
}

pub(crate) fn is_account(name: &str) -> bool {
    matches!(name, "AccountRemoteRoot" | "AccountRemoteUser")
}

/// The `schema` answer of `transfer_module_schema`.
pub(crate) fn schema_json(schema: &Schema) -> serde_json::Value {
    let keys: serde_json::Map<String, serde_json::Value> = schema
        .keys
        .iter()
        .map(|k| {
            let def = match *k {
                "size" | "files" => "BIGINT UNSIGNED DEFAULT 1",
                "priority" => "int(1) DEFAULT 255",
                "copypoint" | "cpmovefile" | "disabled" | "keep_local_cpuser_values" => "text",
                "reseller"
                | "force"
                | "ip"
                | "live_transfer"
                | "xferpoint"
                | "overwrite_with_delete" => "int(1) DEFAULT 0",
                k if k.starts_with("skip")
                    || k.starts_with("overwrite_")
                    || k == "shared_mysql_server" =>
                {
                    "int(1) DEFAULT 0"
                }
                _ => "char(255) DEFAULT NULL",
            };
            (k.to_string(), serde_json::json!({ "def": def }))
        })
        .collect();
    let mut v = serde_json::json!({
        "primary": [schema.primary],
        "required": schema.required,
        "keys": keys,
    });
    if let Some(p) = schema.prerequisite {
        v["prerequisite"] = p.into();
    }
    v
}
