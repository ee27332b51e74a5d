//! URL path -> what to serve. The path is taken raw, before any percent-decoding: repository
//! keys only ever contain `[A-Za-z0-9._-]`, which no client needs to escape, so a `%` (like a
//! `..`, a backslash, an empty segment or a leading dot) can only be a mistake or an attack and
//! is refused with 400 before storage sees it.

use vigil_repository::storage::check_key;

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Health,
    Metrics,
    /// `POST /fleet/checkin`.
    FleetCheckin,
    /// An admin read of the fleet.
    Fleet(FleetPage),
    /// A repository object: `metadata/...` or `targets/...`, already checked by `check_key`.
    Object(&'a str),
    /// Not a safe repository key: 400.
    BadPath,
    /// A well-formed path outside `metadata/` and `targets/`: 404.
    NotFound,
}

/// The admin reads of the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FleetPage {
    /// `/api/fleet/health`
    Health,
    /// `/api/fleet`
    Summary,
    /// `/fleet`
    Console,
    /// `/fleet/compliance.csv`
    Csv,
}

impl Route<'_> {
    /// The `route` label of the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Metrics => "metrics",
            Route::FleetCheckin => "fleet_checkin",
            Route::Fleet(_) => "fleet_admin",
            Route::Object(key) if key.starts_with("metadata/") => "metadata",
            Route::Object(_) => "targets",
            Route::BadPath | Route::NotFound => "other",
        }
    }
}

pub fn route(path: &str) -> Route<'_> {
    match path {
        "/healthz" => return Route::Health,
        "/metrics" => return Route::Metrics,
        "/fleet/checkin" => return Route::FleetCheckin,
        "/api/fleet/health" => return Route::Fleet(FleetPage::Health),
        "/api/fleet" => return Route::Fleet(FleetPage::Summary),
        "/fleet" => return Route::Fleet(FleetPage::Console),
        "/fleet/compliance.csv" => return Route::Fleet(FleetPage::Csv),
        "/" => return Route::NotFound,
        _ => {}
    }
    let Some(key) = path.strip_prefix('/') else {
        return Route::BadPath;
    };
    if check_key(key).is_err() {
        return Route::BadPath;
    }
    if key.starts_with("metadata/") || key.starts_with("targets/") {
        Route::Object(key)
    } else {
        Route::NotFound
    }
}

/// How long an object may be cached, by clients and by us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Content-addressed targets and versioned metadata: a name never changes its bytes.
    Immutable,
    /// `timestamp.json` and anything else that a publish may replace.
    Mutable,
}

pub fn class_of(key: &str) -> Class {
    let name = key.rsplit('/').next().unwrap_or(key);
    let immutable = if key.starts_with("metadata/") {
        is_versioned_metadata(name)
    } else {
        is_content_addressed(name)
    };
    if immutable {
        Class::Immutable
    } else {
        Class::Mutable
    }
}

/// `N.role.json` with consistent snapshots; `timestamp.json` never has a version.
fn is_versioned_metadata(name: &str) -> bool {
    let Some((version, rest)) = name.split_once('.') else {
        return false;
    };
    !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
        && rest.len() > ".json".len()
        && rest.ends_with(".json")
}

/// `<64 hex sha256>.<name>`: the name is the hash of the bytes.
fn is_content_addressed(name: &str) -> bool {
    match name.split_once('.') {
        Some((hash, rest)) => {
            hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) && !rest.is_empty()
        }
        None => false,
    }
}

/// Whether `key` is a name the repository's scheme can hold (see `vigil_repository::layout`):
/// `metadata/timestamp.json`, `metadata/N.root.json`, `N.targets.json`, `N.snapshot.json`,
/// `targets/<sha256>.vigil-N.vdb` and `targets/<sha256>.vigil-A-B.vdelta`, with versions in
/// canonical decimal and the hash in lowercase hex, as the publisher writes them. Only these
/// are worth remembering as "not found": a client asks for them before they exist (the next
/// root at every update check). Any other name can only be a mistake or a probe.
pub fn is_scheme_name(key: &str) -> bool {
    if let Some(name) = key.strip_prefix("metadata/") {
        if name == "timestamp.json" {
            return true;
        }
        let Some((version, role)) = name.split_once('.') else {
            return false;
        };
        return is_version(version)
            && matches!(role, "root.json" | "targets.json" | "snapshot.json");
    }
    let Some(name) = key.strip_prefix("targets/") else {
        return false;
    };
    let Some((hash, target)) = name.split_once('.') else {
        return false;
    };
    if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return false;
    }
    let Some(target) = target.strip_prefix("vigil-") else {
        return false;
    };
    if let Some(version) = target.strip_suffix(".vdb") {
        return is_version(version);
    }
    if let Some(pair) = target.strip_suffix(".vdelta") {
        return pair
            .split_once('-')
            .is_some_and(|(from, to)| is_version(from) && is_version(to));
    }
    false
}

/// A u64 as `format!("{n}")` writes it: digits, no sign, no leading zero.
fn is_version(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
        && s.parse::<u64>().is_ok()
}

pub fn content_type(key: &str) -> &'static str {
    if key.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/healthz"), Route::Health);
        assert_eq!(route("/metrics"), Route::Metrics);
        assert_eq!(route("/fleet/checkin"), Route::FleetCheckin);
        assert_eq!(route("/fleet"), Route::Fleet(FleetPage::Console));
        assert_eq!(route("/api/fleet"), Route::Fleet(FleetPage::Summary));
        assert_eq!(route("/fleet/x"), Route::NotFound);
        assert_eq!(
            route("/metadata/timestamp.json"),
            Route::Object("metadata/timestamp.json")
        );
        assert_eq!(route("/targets/ab.x"), Route::Object("targets/ab.x"));
        for bad in [
            "/../etc/passwd",
            "/metadata/../x",
            "/metadata/%2e%2e/x",
            "//metadata/x",
            "/metadata//x",
            "/metadata/a\\b",
            "/metadata/.tmp-x",
            "/.vigil-publish.lock",
            "/metadata/",
            "*",
        ] {
            assert_eq!(route(bad), Route::BadPath, "{bad}");
        }
        assert_eq!(route("/"), Route::NotFound);
        assert_eq!(route("/index.html"), Route::NotFound);
        assert_eq!(
            route(&format!("/metadata/{}", "a".repeat(600))),
            Route::BadPath
        );
    }

    #[test]
    fn classes() {
        let h = "0".repeat(64);
        assert_eq!(
            class_of(&format!("targets/{h}.vigil-7.vdb")),
            Class::Immutable
        );
        assert_eq!(class_of("targets/abc.vigil-7.vdb"), Class::Mutable);
        assert_eq!(class_of(&format!("targets/{h}")), Class::Mutable);
        assert_eq!(class_of("metadata/3.snapshot.json"), Class::Immutable);
        assert_eq!(class_of("metadata/12.root.json"), Class::Immutable);
        assert_eq!(class_of("metadata/timestamp.json"), Class::Mutable);
        assert_eq!(class_of("metadata/root.json"), Class::Mutable);
        assert_eq!(class_of("metadata/3.json"), Class::Mutable);
        assert_eq!(class_of("metadata/x3.root.json"), Class::Mutable);
    }

    #[test]
    fn scheme_names_are_what_the_publisher_writes() {
        use vigil_repository::layout;
        let h = "0123456789abcdef".repeat(4);
        for key in [
            layout::TIMESTAMP.to_owned(),
            layout::root_key(1),
            layout::root_key(u64::MAX),
            layout::targets_key(42),
            layout::snapshot_key(42),
            layout::target_key(&h, &layout::full_name(0)),
            layout::target_key(&h, &layout::full_name(7)),
            layout::target_key(&h, &layout::delta_name(6, 7)),
        ] {
            assert!(is_scheme_name(&key), "{key}");
        }
        for key in [
            format!("metadata/{}", "a".repeat(240)),
            format!("metadata/{}.root.json", "1".repeat(230)),
            "metadata/root.json".to_owned(),
            "metadata/01.root.json".to_owned(),
            "metadata/1.mirrors.json".to_owned(),
            "metadata/1.root.json.bak".to_owned(),
            "metadata/-1.root.json".to_owned(),
            "metadata/timestamp.json.1".to_owned(),
            "timestamp.json".to_owned(),
            format!("targets/{}.vigil-7.vdb", &h[1..]),
            format!("targets/{}.vigil-7.vdb", h.to_uppercase()),
            format!("targets/{h}.vigil-07.vdb"),
            format!("targets/{h}.vigil-7.zip"),
            format!("targets/{h}.vigil-6-.vdelta"),
            format!("targets/{h}.other-7.vdb"),
            format!("targets/{h}"),
            format!("metadata/{h}.vigil-7.vdb"),
            format!("targets/x/{h}.vigil-7.vdb"),
        ] {
            assert!(!is_scheme_name(&key), "{key}");
        }
    }
}
