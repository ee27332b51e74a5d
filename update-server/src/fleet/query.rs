//! Query strings of the admin reads, parsed strictly: every value is a name or a number, so
//! nothing needs percent-decoding, and anything else is refused with a message naming the
//! parameter.

use super::store::HealthQuery;

/// Silence before a host counts as gone, when `silent_after` is not given.
pub const DEFAULT_SILENT_AFTER_SECS: u64 = 3600;
/// The stale limit when `stale_hours` is not given.
pub const DEFAULT_STALE_HOURS: u64 = 24;

fn pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// `channel=C&version=N&since=UNIX&silent_after=SECS`; channel and version are required.
pub fn health(query: &str, now: i64) -> Result<HealthQuery, String> {
    let mut channel = None;
    let mut version = None;
    let mut since = 0i64;
    let mut silent_after = DEFAULT_SILENT_AFTER_SECS;
    for (k, v) in pairs(query) {
        match k {
            "channel" if vigil_repository::rollout::valid_name(v) => channel = Some(v.to_owned()),
            "channel" => return Err("channel: 1 to 32 of a-z 0-9 -".into()),
            "version" => {
                version = Some(
                    v.parse::<i64>()
                        .ok()
                        .filter(|v| *v > 0)
                        .ok_or("version: a number from 1 to 2^63-1")?,
                );
            }
            "since" => {
                since = v
                    .parse::<i64>()
                    .ok()
                    .filter(|v| *v >= 0)
                    .ok_or("since: Unix seconds")?;
            }
            "silent_after" => {
                silent_after = v
                    .parse::<u64>()
                    .ok()
                    .filter(|v| *v <= 10 * 365 * 86_400)
                    .ok_or("silent_after: seconds, at most ten years")?;
            }
            _ => return Err(format!("unknown parameter {:?}", truncate(k))),
        }
    }
    Ok(HealthQuery {
        channel: channel.ok_or("channel is required")?,
        version: version.ok_or("version is required")?,
        since,
        silent_after_secs: silent_after,
        now,
    })
}

/// `stale_hours=N` (1 to 8760) on the console, the JSON and the CSV.
pub fn stale_hours(query: &str) -> Result<u64, String> {
    let mut hours = DEFAULT_STALE_HOURS;
    for (k, v) in pairs(query) {
        match k {
            "stale_hours" => {
                hours = v
                    .parse::<u64>()
                    .ok()
                    .filter(|h| (1..=8760).contains(h))
                    .ok_or("stale_hours: 1 to 8760")?;
            }
            _ => return Err(format!("unknown parameter {:?}", truncate(k))),
        }
    }
    Ok(hours)
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_queries() {
        let q = health("channel=stable&version=7&since=100&silent_after=60", 1000).unwrap();
        assert_eq!(
            (q.channel.as_str(), q.version, q.since, q.silent_after_secs),
            ("stable", 7, 100, 60)
        );
        assert_eq!(q.silent_before(), 940);
        let q = health("version=7&channel=beta", 5).unwrap();
        assert_eq!((q.since, q.silent_after_secs), (0, 3600));
        for (bad, says) in [
            ("version=7", "channel"),
            ("channel=stable", "version"),
            ("channel=Stable&version=7", "channel"),
            ("channel=stable&version=0", "version"),
            ("channel=stable&version=-1", "version"),
            ("channel=stable&version=7&since=x", "since"),
            ("channel=stable&version=7&x=1", "unknown"),
            ("channel=%3Cb%3E&version=7", "channel"),
        ] {
            let e = health(bad, 0).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn stale_hours_parse() {
        assert_eq!(stale_hours(""), Ok(24));
        assert_eq!(stale_hours("stale_hours=48"), Ok(48));
        assert!(stale_hours("stale_hours=0").is_err());
        assert!(stale_hours("stale_hours=x").is_err());
        assert!(stale_hours("é=1").is_err());
    }
}
