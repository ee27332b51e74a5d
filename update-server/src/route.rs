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
    /// A repository object: `metadata/...` or `targets/...`, already checked by `check_key`.
    Object(&'a str),
    /// Not a safe repository key: 400.
    BadPath,
    /// A well-formed path outside `metadata/` and `targets/`: 404.
    NotFound,
}

impl Route<'_> {
    /// The `route` label of the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Metrics => "metrics",
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
}
