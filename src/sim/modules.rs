//! Transfer item modules: type ids (= processing order), primary keys and the
//! key schemas that `enqueue_transfer_item` validates against
//! (`S/Config.pm %ITEMTYPE_NAMES`, `S/Items/Schema/*.pm`).

/// The schema of a module's queue row, as `transfer_module_schema` returns
/// it (`S/Items.pm::schema` → `S/Items/Schema/<Module>.pm`).
#[derive(Debug)]
pub(crate) struct Schema {
    pub primary: &'static str,
    pub required: &'static [&'static str],
    /// Every valid key (required ones included) with its column definition.
    pub keys: &'static [(&'static str, &'static str)],
    /// The key naming another item of the session that must go first.
    pub prerequisite: Option<&'static str>,
}

impl Schema {
    pub(crate) fn has_key(&self, key: &str) -> bool {
        self.keys.iter().any(|(k, _)| *k == key)
    }
}

#[derive(Debug)]
pub(crate) struct Module {
    pub name: &'static str,
    pub type_id: u32,
    /// Localised name in `master.log` (`item_name`).
    pub item_name: &'static str,
    pub schema: &'static Schema,
    /// false: whm-sim refuses to enqueue it (it does not model the module).
    pub enqueue: bool,
    /// Which session kind may enqueue it.
    pub session: SessionKindRule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionKindRule {
    RootOnly,
    UserOnly,
    Any,
}

const CHAR: &str = "char(255) DEFAULT NULL";
const VARCHAR: &str = "varchar(255) DEFAULT NULL";
const BIGINT: &str = "BIGINT UNSIGNED DEFAULT 1";
const FLAG: &str = "int(1) DEFAULT 0";
const TEXT: &str = "text";

/// `Schema/AccountBase.pm` (AccountRemoteRoot, AccountRemoteUser,
/// AccountLocal and AccountUpload use it as is), with the linked-node
/// worker key of `Utils/LinkedNodes.pm` (`mail_location`).
const ACCOUNT_KEYS: &[(&str, &str)] = &[
    ("user", CHAR),
    ("size", BIGINT),
    ("files", BIGINT),
    ("priority", "int(1) DEFAULT 255"),
    ("localuser", CHAR),
    ("detected_remote_user", CHAR),
    ("domain", CHAR),
    ("customip", CHAR),
    ("replaceip", CHAR),
    ("prerequisite_user", CHAR),
    ("reseller", FLAG),
    ("force", FLAG),
    ("ip", FLAG),
    ("skiphomedir", FLAG),
    ("shared_mysql_server", FLAG),
    ("skipres", FLAG),
    ("skipacctdb", FLAG),
    ("skipbwdata", FLAG),
    ("skipaccount", FLAG),
    ("skipsubdomains", FLAG),
    ("skipemail", FLAG),
    ("overwrite_all_dbs", FLAG),
    ("overwrite_all_dbusers", FLAG),
    ("overwrite_sameowner_dbs", FLAG),
    ("overwrite_sameowner_dbusers", FLAG),
    ("xferpoint", FLAG),
    ("copypoint", TEXT),
    ("cpmovefile", TEXT),
    ("disabled", TEXT),
    ("overwrite_with_delete", FLAG),
    ("live_transfer", FLAG),
    ("keep_local_cpuser_values", TEXT),
    ("mail_location", CHAR),
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
    keys: &[("package", VARCHAR), ("size", BIGINT)],
    prerequisite: None,
};
static FEATURELIST: Schema = Schema {
    primary: "featurelist",
    required: &["featurelist"],
    keys: &[("featurelist", VARCHAR), ("size", BIGINT)],
    prerequisite: None,
};
/// `Schema/LegacyAccountBackup.pm`.
static LEGACY_BACKUP: Schema = Schema {
    primary: "user",
    required: &["user", "restoretype"],
    keys: &[
        ("user", CHAR),
        ("size", BIGINT),
        ("files", BIGINT),
        ("restoretype", CHAR),
        ("restoreall", FLAG),
        ("restoreip", FLAG),
        ("restoremail", FLAG),
        ("restoremysql", FLAG),
        ("restorepsql", FLAG),
        ("restorebwdata", FLAG),
        ("restoresubs", FLAG),
        ("unrestricted_restore", FLAG),
        ("overwrite_all_dbs", FLAG),
        ("overwrite_all_dbusers", FLAG),
        ("overwrite_sameowner_dbs", FLAG),
        ("overwrite_sameowner_dbusers", FLAG),
        ("mysql_dbs_to_restore", TEXT),
        ("pgsql_dbs_to_restore", TEXT),
    ],
    prerequisite: None,
};
/// `Schema/KeyValueBase.pm` (and `ThemesRemoteRoot.pm`, which repeats it).
static KEY_VALUE: Schema = Schema {
    primary: "name",
    required: &["name"],
    keys: &[("name", CHAR), ("size", BIGINT)],
    prerequisite: None,
};
static EXIM: Schema = Schema {
    primary: "name",
    required: &["name"],
    keys: &[
        ("name", CHAR),
        ("size", BIGINT),
        ("disable_rbls", "BIGINT UNSIGNED DEFAULT 0"),
    ],
    prerequisite: None,
};
static REARRANGE: Schema = Schema {
    primary: "user",
    required: &["user"],
    keys: &[("user", CHAR), ("size", BIGINT), ("target", CHAR)],
    prerequisite: None,
};
static MAILBOX_CONVERSION: Schema = Schema {
    primary: "user",
    required: &["user"],
    keys: &[
        ("user", CHAR),
        ("size", BIGINT),
        ("target_format", CHAR),
        ("source_format", CHAR),
        ("skip_removal", "INT(1) DEFAULT 0"),
    ],
    prerequisite: None,
};

use SessionKindRule::*;

pub(crate) static MODULES: &[Module] = &[
    m(
        "FeatureListRemoteRoot",
        1000,
        "Feature List",
        &FEATURELIST,
        true,
        RootOnly,
    ),
    m(
        "BackupsRemoteRoot",
        1045,
        "Backups",
        &KEY_VALUE,
        false,
        RootOnly,
    ),
    m("EximRemoteRoot", 1050, "Exim", &EXIM, false, RootOnly),
    m(
        "ThemesRemoteRoot",
        1052,
        "Themes",
        &KEY_VALUE,
        false,
        RootOnly,
    ),
    m(
        "ApacheRemoteRoot",
        1054,
        "Apache",
        &KEY_VALUE,
        false,
        RootOnly,
    ),
    m(
        "MySQLRemoteRoot",
        1056,
        "MySQL",
        &KEY_VALUE,
        false,
        RootOnly,
    ),
    m(
        "WHMConfRemoteRoot",
        1058,
        "WHM Configuration",
        &KEY_VALUE,
        false,
        RootOnly,
    ),
    m(
        "GreyListRemoteRoot",
        1060,
        "Greylisting",
        &KEY_VALUE,
        false,
        RootOnly,
    ),
    m(
        "HulkRemoteRoot",
        1061,
        "cPHulk",
        &KEY_VALUE,
        false,
        RootOnly,
    ),
    m(
        "AutoSSLOptionsRemoteRoot",
        1062,
        "AutoSSL Options",
        &KEY_VALUE,
        false,
        RootOnly,
    ),
    m(
        "ModSecurityRemoteRoot",
        1070,
        "ModSecurity",
        &KEY_VALUE,
        false,
        RootOnly,
    ),
    m(
        "PackageRemoteRoot",
        2000,
        "Package",
        &PACKAGE,
        true,
        RootOnly,
    ),
    m(
        "AccountRemoteRoot",
        3000,
        "Account",
        &ACCOUNT,
        true,
        RootOnly,
    ),
    m(
        "AccountRemoteUser",
        4000,
        "Account",
        &ACCOUNT,
        true,
        UserOnly,
    ),
    m("AccountLocal", 5000, "Account", &ACCOUNT, true, Any),
    m(
        "LegacyAccountBackup",
        6000,
        "Account",
        &LEGACY_BACKUP,
        true,
        Any,
    ),
    m("AccountUpload", 7000, "Account", &ACCOUNT, false, Any),
    m("RearrangeAccount", 8000, "Account", &REARRANGE, false, Any),
    m(
        "MailboxConversion",
        9000,
        "Mailbox Conversion",
        &MAILBOX_CONVERSION,
        false,
        Any,
    ),
];

const fn m(
    name: &'static str,
    type_id: u32,
    item_name: &'static str,
    schema: &'static Schema,
    enqueue: bool,
    session: SessionKindRule,
) -> Module {
    Module {
        name,
        type_id,
        item_name,
        schema,
        enqueue,
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

/// The `schema` answer of `transfer_module_schema`:
/// `{primary: [key], required: [...], keys: {name: {def}}, prerequisite?}`.
pub(crate) fn schema_json(schema: &Schema) -> serde_json::Value {
    let keys: serde_json::Map<String, serde_json::Value> = schema
        .keys
        .iter()
        .map(|(k, def)| (k.to_string(), serde_json::json!({ "def": def })))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_schema_is_account_base_pm() {
        let v = schema_json(find("AccountRemoteRoot").unwrap().schema);
        assert_eq!(v["keys"].as_object().unwrap().len(), 33);
        assert_eq!(v["keys"]["priority"]["def"], "int(1) DEFAULT 255");
        assert_eq!(v["keys"]["keep_local_cpuser_values"]["def"], "text");
        assert_eq!(v["prerequisite"], "prerequisite_user");
        let p = schema_json(find("PackageRemoteRoot").unwrap().schema);
        assert_eq!(p["keys"]["package"]["def"], "varchar(255) DEFAULT NULL");
        assert!(p.get("prerequisite").is_none());
        assert!(std::ptr::eq(
            find("AccountLocal").unwrap().schema,
            find("AccountRemoteUser").unwrap().schema
        ));
    }
}
