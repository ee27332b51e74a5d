//! The compliance report: every host, its definitions' age and its last scan, as CSV
//! (RFC 4180), streamed a page of hosts at a time so memory stays flat at any fleet size.

use super::releases::ReleaseView;
use super::store::Host;
use super::summary::{age_hours, published_of};

pub const HEADER: &str = "client_id,hostname,instance_id,channel,ring,version,sha256,\
definitions_published,definitions_age_hours,behind,last_checkin,last_update_result,last_scan,\
scanned,infected,errors\r\n";

/// One field: quoted when it holds a comma, quote or line break (quotes doubled). Text that a
/// spreadsheet would take for a formula (`=`, `+`, `-`, `@` first) gets a leading `'`; check-in
/// fields cannot hold most of those, but the report must be safe to open whatever it holds.
pub fn field(out: &mut String, s: &str) {
    let s_owned;
    let s = if s.starts_with(['=', '+', '-', '@']) {
        s_owned = format!("'{s}");
        s_owned.as_str()
    } else {
        s
    };
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// RFC 3339 in UTC, or empty.
pub fn time(t: Option<i64>) -> String {
    t.and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A host's line, CRLF-terminated. `offered`: the version its channel offers everyone.
pub fn row(h: &Host, releases: &[ReleaseView], offered: Option<i64>, now: i64) -> String {
    let published = published_of(releases, h.installed_version);
    let num = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    let behind = match (offered, h.installed_version) {
        (Some(o), Some(v)) => v < o,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let cells: [String; 16] = [
        h.client_id.clone(),
        h.hostname.clone(),
        h.instance_id.clone().unwrap_or_default(),
        h.channel.clone(),
        h.ring.clone().unwrap_or_default(),
        num(h.installed_version),
        h.installed_sha256.clone().unwrap_or_default(),
        time(published),
        num(age_hours(now, published)),
        behind.to_string(),
        time(Some(h.last_seen)),
        h.update_result.clone(),
        time(h.scan_at),
        num(h.scanned),
        num(h.infected),
        num(h.errors),
    ];
    let mut out = String::with_capacity(256);
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(&mut out, c);
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        let f = |s: &str| {
            let mut o = String::new();
            field(&mut o, s);
            o
        };
        assert_eq!(f("web-1"), "web-1");
        assert_eq!(f("a,b"), "\"a,b\"");
        assert_eq!(f("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(f("two\nlines"), "\"two\nlines\"");
        assert_eq!(f("=cmd()"), "'=cmd()");
        assert_eq!(f("-1,2"), "\"'-1,2\"");
    }

    #[test]
    fn rows() {
        let h = Host {
            client_id: "c1".into(),
            hostname: "web-1".into(),
            channel: "stable".into(),
            installed_version: Some(6),
            update_result: "ok".into(),
            last_seen: 7200,
            ..Host::default()
        };
        let r = ReleaseView {
            version: 6,
            channel: "stable".into(),
            published: Some(0),
            plan: None,
            reach: None,
            complete: true,
            paused: None,
            revoked: None,
        };
        let line = row(&h, &[r], Some(7), 7200);
        assert_eq!(
            line,
            "c1,web-1,,stable,,6,,1970-01-01T00:00:00Z,2,true,1970-01-01T02:00:00Z,ok,,,,\r\n"
        );
        assert_eq!(HEADER.split(',').count(), line.split(',').count());
    }
}
