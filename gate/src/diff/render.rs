//! The diff as text: for a terminal, as JSON for tools, and as Markdown for a pull-request
//! comment or a CI job summary.
//!
//! Nothing here depends on the clock, the machine or the order of a hash map, so the same two
//! databases always render to the same bytes (the golden tests rely on it). Text that comes
//! from a database or a repository (signature names, file names, an override reason) is
//! escaped: control characters never reach a terminal, and Markdown never breaks out of its
//! table cell or code span.

use std::fmt::Write as _;

use super::{Changed, DatabaseSummary, Diff, SectionSize, SigRef};

/// Output formats of `vigil-build diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffFormat {
    Human,
    Json,
    Markdown,
}

/// Lists longer than this are folded into `<details>` in Markdown.
pub const LONG_LIST: usize = 20;

/// Digits of an identity shown in human and Markdown output (the JSON has all 64).
const SHORT_ID: usize = 12;

pub fn render(d: &Diff, format: DiffFormat) -> String {
    match format {
        DiffFormat::Human => human(d),
        DiffFormat::Json => json(d),
        DiffFormat::Markdown => markdown(d),
    }
}

pub fn json(d: &Diff) -> String {
    // Serialising plain structs of strings and integers cannot fail; an empty object would
    // at least be valid JSON if it ever did.
    let mut s = serde_json::to_string_pretty(d).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

fn short(id: &str) -> &str {
    id.get(..SHORT_ID).unwrap_or(id)
}

/// Text from a database or repository, safe for a terminal: control characters escaped.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn signed(n: i128) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

/// `old -> new (+delta)`, `new` alone when there is no old, `n (unchanged)`-style when equal.
fn change<T: Into<i128> + Copy + std::fmt::Display>(
    old: Option<T>,
    new: Option<T>,
    arrow: &str,
) -> String {
    match (old, new) {
        (Some(o), Some(n)) if o.into() == n.into() => format!("{n}"),
        (Some(o), Some(n)) => format!("{o} {arrow} {n} ({})", signed(n.into() - o.into())),
        (None, Some(n)) => format!("- {arrow} {n}"),
        (Some(o), None) => format!("{o} {arrow} -"),
        (None, None) => "-".into(),
    }
}

fn section_field(s: Option<SectionSize>, f: fn(SectionSize) -> u64) -> Option<u64> {
    s.map(f)
}

fn engine_line(d: &Diff) -> String {
    let p = d.min_engine_version;
    match p.old {
        Some(o) if o < p.new => format!(
            "{o} -> {} (raised: clients whose engine is older than {} stay on version {})",
            p.new,
            p.new,
            d.db_version.old.unwrap_or_default()
        ),
        Some(o) if o > p.new => format!("{o} -> {} (lowered)", p.new),
        Some(_) => format!("{} (unchanged)", p.new),
        None => format!("{}", p.new),
    }
}

fn describe(s: &DatabaseSummary) -> String {
    format!(
        "{}  version {}  engine >= {}  {} bytes  sha256 {}  key {}  {}",
        clean(&s.label),
        s.db_version,
        s.min_engine_version,
        s.size,
        short(&s.sha256),
        s.key_id,
        if s.signature_checked {
            "signature verified"
        } else {
            "signature not checked (no --pubkey)"
        }
    )
}

fn origin_lines(out: &mut String, side: &str, s: &DatabaseSummary) {
    let Some(o) = &s.origin else { return };
    let _ = writeln!(
        out,
        "{side} is the live release {} of {}",
        clean(&o.target),
        clean(&o.repository)
    );
    if let Some(reason) = &o.gate_override {
        let _ = writeln!(out, "  published past a failing gate: {}", clean(reason));
    }
}

pub fn human(d: &Diff) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "diff {} -> {}",
        d.old
            .as_ref()
            .map_or("(nothing)".to_string(), |o| clean(&o.label)),
        clean(&d.new.label)
    );
    match &d.old {
        Some(o) => {
            let _ = writeln!(out, "old  {}", describe(o));
        }
        None => {
            let _ = writeln!(out, "old  none: the repository has no database yet");
        }
    }
    let _ = writeln!(out, "new  {}", describe(&d.new));
    if let Some(o) = &d.old {
        origin_lines(&mut out, "old", o);
    }
    origin_lines(&mut out, "new", &d.new);
    let _ = writeln!(out, "minimum engine version: {}", engine_line(d));
    if d.version_not_newer() {
        let _ = writeln!(
            out,
            "warning: version {} is not newer than {}: publish refuses it",
            d.db_version.new,
            d.db_version.old.unwrap_or_default()
        );
    }

    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<10} {:>7} {:>7} {:>7} {:>8} {:>8}",
        "signatures", "old", "new", "added", "removed", "changed"
    );
    let row = |out: &mut String, name: &str, c: &super::Counts| {
        let _ = writeln!(
            out,
            "{:<10} {:>7} {:>7} {:>7} {:>8} {:>8}",
            name, c.old, c.new, c.added, c.removed, c.changed
        );
    };
    for k in &d.counts {
        row(&mut out, k.kind.as_str(), &k.counts);
    }
    row(&mut out, "total", &d.total);

    if !d.sections.is_empty() {
        let _ = writeln!(out);
        let cells: Vec<[String; 4]> = d
            .sections
            .iter()
            .map(|s| {
                [
                    s.section.clone(),
                    change(
                        section_field(s.old, |x| u64::from(x.records)),
                        section_field(s.new, |x| u64::from(x.records)),
                        "->",
                    ),
                    change(
                        section_field(s.old, |x| x.stored_bytes),
                        section_field(s.new, |x| x.stored_bytes),
                        "->",
                    ),
                    change(
                        section_field(s.old, |x| x.raw_bytes),
                        section_field(s.new, |x| x.raw_bytes),
                        "->",
                    ),
                ]
            })
            .collect();
        let head = ["section", "records", "stored bytes", "raw bytes"];
        let w: Vec<usize> = (0..4)
            .map(|i| {
                cells
                    .iter()
                    .map(|c| c[i].len())
                    .chain([head[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |out: &mut String, c: [&str; 4]| {
            let _ = writeln!(
                out,
                "{:<w0$}  {:<w1$}  {:<w2$}  {}",
                c[0],
                c[1],
                c[2],
                c[3],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2]
            );
        };
        line(&mut out, head);
        for c in &cells {
            line(&mut out, [&c[0], &c[1], &c[2], &c[3]]);
        }
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {}",
            "file",
            "",
            change(d.size.old, Some(d.size.new), "->"),
            w0 = w[0],
            w1 = w[1]
        );
    }

    if d.same_signatures() {
        let _ = writeln!(out, "\nno signature added, removed or changed");
        return out;
    }
    let name_w = d
        .added
        .iter()
        .chain(&d.removed)
        .map(|s| clean(&s.name).chars().count())
        .chain(d.changed.iter().map(|c| clean(&c.name).chars().count()))
        .max()
        .unwrap_or(0);
    let place = |s: &SigRef| format!("{}:{}", clean(&s.file), s.line);
    let changed_places: Vec<String> = d
        .changed
        .iter()
        .map(|c| changed_place(c, "->", clean))
        .collect();
    let place_w = d
        .added
        .iter()
        .chain(&d.removed)
        .map(|s| place(s).chars().count())
        .chain(changed_places.iter().map(|p| p.chars().count()))
        .max()
        .unwrap_or(0);
    let list = |out: &mut String, title: &str, sigs: &[SigRef]| {
        if sigs.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n{title} ({})", sigs.len());
        for s in sigs {
            let _ = writeln!(
                out,
                "  {:<5}  {:<name_w$}  {:<place_w$}  {}",
                s.kind.as_str(),
                clean(&s.name),
                place(s),
                short(&s.identity),
            );
        }
    };
    list(&mut out, "added", &d.added);
    list(&mut out, "removed", &d.removed);
    if !d.changed.is_empty() {
        let _ = writeln!(out, "\nchanged ({})", d.changed.len());
        for (c, p) in d.changed.iter().zip(&changed_places) {
            let _ = writeln!(
                out,
                "  {:<5}  {:<name_w$}  {:<place_w$}  {} -> {}",
                c.kind.as_str(),
                clean(&c.name),
                p,
                short(&c.old.identity),
                short(&c.new.identity),
            );
        }
    }
    out
}

/// `file:line`, or `old -> new` when the signature also moved.
fn changed_place(c: &Changed, arrow: &str, esc: fn(&str) -> String) -> String {
    let new = format!("{}:{}", esc(&c.new.file), c.new.line);
    if c.old.file == c.new.file && c.old.line == c.new.line {
        new
    } else {
        format!("{}:{} {arrow} {new}", esc(&c.old.file), c.old.line)
    }
}

/// Prose from a database or repository inside Markdown: no HTML, no emphasis or links, no
/// table breaks, on one line.
fn md_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A code span that holds any text: a fence longer than any run of backticks inside, pipes
/// escaped for table cells (GitHub unescapes them inside code spans too).
fn md_code(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .replace('|', "\\|");
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    if longest == 0 {
        format!("{fence}{s}{fence}")
    } else {
        format!("{fence} {s} {fence}")
    }
}

fn kind_summary(d: &Diff) -> String {
    let parts: Vec<String> = d
        .counts
        .iter()
        .filter(|k| k.counts.added + k.counts.removed + k.counts.changed > 0)
        .map(|k| {
            format!(
                "{} +{} −{} ~{}",
                k.kind.as_str(),
                k.counts.added,
                k.counts.removed,
                k.counts.changed
            )
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(" · "))
    }
}

pub fn markdown(d: &Diff) -> String {
    let mut out = String::new();
    let title = match d.db_version.old {
        Some(o) => format!("version {o} → {}", d.db_version.new),
        None => format!("version {} (first release)", d.db_version.new),
    };
    let _ = writeln!(out, "### vigil definitions diff: {title}\n");
    let t = d.total;
    let engine = match d.min_engine_version.old {
        Some(o) if o != d.min_engine_version.new => {
            format!("**minimum engine {o} → {}**", d.min_engine_version.new)
        }
        _ => format!("minimum engine {} (unchanged)", d.min_engine_version.new),
    };
    let _ = writeln!(
        out,
        "**{} added, {} removed, {} changed** signatures{}; database {} bytes; {}.\n",
        t.added,
        t.removed,
        t.changed,
        kind_summary(d),
        change(d.size.old, Some(d.size.new), "→"),
        engine
    );
    for s in d.old.iter().chain([&d.new]) {
        if let Some(reason) = s.origin.as_ref().and_then(|o| o.gate_override.as_ref()) {
            let _ = writeln!(
                out,
                "> [!WARNING]\n> The live release {} was published past a failing release gate: {}\n",
                md_code(&s.origin.as_ref().map(|o| o.target.clone()).unwrap_or_default()),
                md_text(reason)
            );
        }
    }
    if d.version_not_newer() {
        let _ = writeln!(
            out,
            "> [!CAUTION]\n> Version {} is not newer than {}: `vigil-build publish` refuses it.\n",
            d.db_version.new,
            d.db_version.old.unwrap_or_default()
        );
    }
    if let Some(o) = d
        .min_engine_version
        .old
        .filter(|&o| o < d.min_engine_version.new)
    {
        let _ = writeln!(
            out,
            "> [!IMPORTANT]\n> The minimum engine version rises from {o} to {}: clients with an older engine stay on version {}.\n",
            d.min_engine_version.new,
            d.db_version.old.unwrap_or_default()
        );
    }

    // Both databases side by side.
    type Cell = fn(&DatabaseSummary) -> String;
    let side = |f: Cell| -> String { d.old.as_ref().map_or("—".into(), f) };
    let _ = writeln!(out, "| | old | new |\n|---|---|---|");
    let rows: [(&str, Cell); 6] = [
        ("database", |s| match &s.origin {
            Some(o) => format!("{} in {}", md_code(&o.target), md_code(&o.repository)),
            None => md_code(&s.label),
        }),
        ("version", |s| s.db_version.to_string()),
        ("minimum engine", |s| s.min_engine_version.to_string()),
        ("size (bytes)", |s| s.size.to_string()),
        ("sha256", |s| md_code(short(&s.sha256))),
        ("signature", |s| {
            if s.signature_checked {
                format!("verified (key {})", md_code(&s.key_id))
            } else {
                format!("not checked (key {})", md_code(&s.key_id))
            }
        }),
    ];
    for (name, f) in rows {
        let _ = writeln!(out, "| {name} | {} | {} |", side(f), f(&d.new));
    }
    let _ = writeln!(out);

    let _ = writeln!(
        out,
        "| signatures | old | new | added | removed | changed |\n|---|--:|--:|--:|--:|--:|"
    );
    for k in &d.counts {
        let c = k.counts;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            k.kind.as_str(),
            c.old,
            c.new,
            c.added,
            c.removed,
            c.changed
        );
    }
    let _ = writeln!(
        out,
        "| **total** | {} | {} | {} | {} | {} |\n",
        t.old, t.new, t.added, t.removed, t.changed
    );

    if !d.sections.is_empty() {
        let _ = writeln!(
            out,
            "| section | records | stored bytes | raw bytes |\n|---|--:|--:|--:|"
        );
        for s in &d.sections {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                s.section,
                change(
                    section_field(s.old, |x| u64::from(x.records)),
                    section_field(s.new, |x| u64::from(x.records)),
                    "→"
                ),
                change(
                    section_field(s.old, |x| x.stored_bytes),
                    section_field(s.new, |x| x.stored_bytes),
                    "→"
                ),
                change(
                    section_field(s.old, |x| x.raw_bytes),
                    section_field(s.new, |x| x.raw_bytes),
                    "→"
                ),
            );
        }
        let _ = writeln!(out);
    }

    let sig_rows = |sigs: &[SigRef]| -> String {
        let mut t = String::from("| kind | signature | where | identity |\n|---|---|---|---|\n");
        for s in sigs {
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} |",
                s.kind.as_str(),
                md_code(&s.name),
                md_code(&format!("{}:{}", s.file, s.line)),
                md_code(short(&s.identity))
            );
        }
        t
    };
    let changed_rows = |sigs: &[Changed]| -> String {
        let mut t = String::from("| kind | signature | where | identity |\n|---|---|---|---|\n");
        for c in sigs {
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} → {} |",
                c.kind.as_str(),
                md_code(&c.name),
                md_code(&changed_place(c, "->", str::to_string)),
                md_code(short(&c.old.identity)),
                md_code(short(&c.new.identity))
            );
        }
        t
    };
    let section = |out: &mut String, title: &str, n: usize, table: String| {
        if n == 0 {
            return;
        }
        if n > LONG_LIST {
            let _ = writeln!(
                out,
                "<details><summary><b>{title} ({n})</b></summary>\n\n{table}\n</details>\n"
            );
        } else {
            let _ = writeln!(out, "#### {title} ({n})\n\n{table}");
        }
    };
    section(&mut out, "Added", d.added.len(), sig_rows(&d.added));
    section(&mut out, "Removed", d.removed.len(), sig_rows(&d.removed));
    section(
        &mut out,
        "Changed",
        d.changed.len(),
        changed_rows(&d.changed),
    );
    if d.same_signatures() {
        let _ = writeln!(out, "No signature added, removed or changed.");
    }
    out
}
