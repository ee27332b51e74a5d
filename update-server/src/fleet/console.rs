//! The fleet console: one server-rendered HTML page, charts as inline SVG, no JavaScript.
//!
//! Everything that came from a check-in is untrusted and goes through [`esc`]. Sections have
//! stable ids (`versions`, `rollout`, `stale`, `failures`, `findings`) and rows stable classes,
//! for people and for tests. Lists are the summary's (first N, with totals), so the page costs
//! the same at any fleet size.

// Rows end in "\n" inside their format strings, like every other line of the page, so the HTML
// source reads a row per line; writeln! would split that rule in two.
#![allow(clippy::write_with_newline)]

use std::fmt::Write;

use super::csv::time;
use super::summary::{HostLine, Summary};

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn version(v: Option<i64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| format!("v{v}"))
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;\
text-align:left}th{background:#f3f3f3}h2{margin-top:1.5em}.muted{color:#777}\
.bad{color:#b00}svg text{font:12px system-ui,sans-serif}";

pub fn render(s: &Summary) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>vigil fleet</title><style>{STYLE}</style></head><body>\n\
         <h1>vigil fleet</h1>\n<p id=\"totals\">{} hosts; stale after {} h: \
         <span id=\"stale-total\">{}</span> stale, <span id=\"silent-total\">{}</span> \
         not checked in; generated {}</p>\n",
        s.hosts,
        s.stale_hours,
        s.stale.total,
        s.silent,
        esc(&time(Some(s.now)))
    );
    versions(&mut h, s);
    rollout(&mut h, s);
    hosts(
        &mut h,
        "stale",
        &format!(
            "Stale hosts (definitions older than {} h, or no check-in for as long)",
            s.stale_hours
        ),
        s.stale.total,
        &s.stale.hosts,
        true,
    );
    failures(&mut h, s);
    hosts(
        &mut h,
        "findings",
        "Finding counts per host (last scan, most infected first)",
        s.findings.total,
        &s.findings.hosts,
        false,
    );
    h.push_str(
        "<p class=\"muted\">Also: <a href=\"/api/fleet\">/api/fleet</a> (JSON), \
         <a href=\"/fleet/compliance.csv\">compliance.csv</a>.</p>\n</body></html>\n",
    );
    h
}

/// One horizontal bar per version and channel, its width the version's share.
fn versions(h: &mut String, s: &Summary) {
    h.push_str("<h2>Versions</h2>\n<div id=\"versions\">\n");
    if s.channels.is_empty() {
        h.push_str("<p class=\"muted\">No check-ins yet.</p>\n");
    }
    const W: u64 = 600;
    for c in &s.channels {
        let rows = c.versions.len().max(1) as u64;
        let _ = write!(
            h,
            "<h3>{} <span class=\"muted\">{} hosts</span></h3>\n\
             <svg class=\"chart\" data-channel=\"{}\" width=\"{}\" height=\"{}\" role=\"img\" \
             aria-label=\"versions on {}\">\n",
            esc(&c.channel),
            c.hosts,
            esc(&c.channel),
            W + 200,
            rows * 24 + 4,
            esc(&c.channel)
        );
        for (i, v) in c.versions.iter().enumerate() {
            let y = i as u64 * 24 + 2;
            let w = (v.ppm * W / 1_000_000).max(1);
            let label = format!("{} {}", version(v.version), v.percent);
            let _ = write!(
                h,
                "<g class=\"share\" data-version=\"{}\" data-hosts=\"{}\">\
                 <rect x=\"0\" y=\"{y}\" width=\"{w}\" height=\"20\" fill=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\">{} ({} hosts)</text></g>\n",
                esc(&version(v.version)),
                v.hosts,
                if v.version.is_some() && v.version == c.offered {
                    "#4a8"
                } else {
                    "#69c"
                },
                w + 6,
                y + 15,
                esc(&label),
                v.hosts
            );
        }
        h.push_str("</svg>\n");
    }
    h.push_str("</div>\n");
}

fn rollout(h: &mut String, s: &Summary) {
    h.push_str(
        "<h2>Rollouts</h2>\n<table id=\"rollout\"><tr><th>channel</th><th>version</th>\
         <th>plan</th><th>reaches</th><th>state</th><th>published</th></tr>\n",
    );
    for c in &s.channels {
        for r in &c.releases {
            let state = if let Some(why) = &r.revoked {
                format!("<span class=\"bad\">revoked: {}</span>", esc(why))
            } else if let Some(why) = &r.paused {
                format!("<span class=\"bad\">paused: {}</span>", esc(why))
            } else if r.complete {
                "complete".to_owned()
            } else {
                "rolling".to_owned()
            };
            let _ = write!(
                h,
                "<tr class=\"release\" data-channel=\"{}\" data-version=\"{}\"><td>{}</td>\
                 <td>v{}</td><td>{}</td><td>{}</td><td>{state}</td><td>{}</td></tr>\n",
                esc(&c.channel),
                r.version,
                esc(&c.channel),
                r.version,
                esc(r.plan.as_deref().unwrap_or("(none: all at once)")),
                esc(r.reach.as_deref().unwrap_or("100%")),
                esc(&time(r.published))
            );
        }
        let _ =
            write!(
            h,
            "<tr class=\"channel-behind\" data-channel=\"{}\"><td colspan=\"6\" class=\"muted\">\
             {}: {} hosts behind {}</td></tr>\n",
            esc(&c.channel),
            esc(&c.channel),
            c.behind,
            c.offered
                .map_or("(no version offered to all)".to_owned(), |v| format!("v{v}"))
        );
    }
    h.push_str("</table>\n");
}

fn hosts(h: &mut String, id: &str, title: &str, total: i64, list: &[HostLine], stale: bool) {
    let _ = write!(
        h,
        "<h2>{}</h2>\n<p class=\"muted\">{} hosts{}</p>\n<table id=\"{id}\"><tr><th>host</th>\
         <th>client id</th><th>channel</th><th>version</th><th>last check-in</th>",
        esc(title),
        total,
        if (list.len() as i64) < total {
            format!(", the first {} shown", list.len())
        } else {
            String::new()
        }
    );
    if stale {
        h.push_str("<th>why</th></tr>\n");
    } else {
        h.push_str("<th>last scan</th><th>scanned</th><th>infected</th><th>errors</th></tr>\n");
    }
    for l in list {
        let _ = write!(
            h,
            "<tr class=\"host\" data-client=\"{}\"><td class=\"hostname\">{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td>",
            esc(&l.client_id),
            esc(&l.hostname),
            esc(&l.client_id),
            esc(&l.channel),
            esc(&version(l.version)),
            esc(&time(Some(l.last_seen)))
        );
        if stale {
            let _ = write!(
                h,
                "<td class=\"why\">{}</td></tr>\n",
                esc(l.reason.as_deref().unwrap_or(""))
            );
        } else {
            let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
            let _ = write!(
                h,
                "<td>{}</td><td>{}</td><td class=\"infected\">{}</td><td>{}</td></tr>\n",
                esc(&time(l.scan_at)),
                n(l.scanned),
                n(l.infected),
                n(l.errors)
            );
        }
    }
    h.push_str("</table>\n");
}

fn failures(h: &mut String, s: &Summary) {
    h.push_str(
        "<h2>Recent update failures</h2>\n<table id=\"failures\"><tr><th>time</th><th>host</th>\
         <th>client id</th><th>channel</th><th>version</th><th>result</th><th>message</th></tr>\n",
    );
    for f in &s.failures {
        let _ = write!(
            h,
            "<tr class=\"failure\" data-client=\"{}\"><td>{}</td><td class=\"hostname\">{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td class=\"result\">{}</td>\
             <td class=\"message\">{}</td></tr>\n",
            esc(&f.client_id),
            esc(&time(Some(f.at))),
            esc(&f.hostname),
            esc(&f.client_id),
            esc(&f.channel),
            esc(&version(f.version)),
            esc(&f.result),
            esc(f.message.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
