//! `hashpyc cache stats|prune|clean`: the bytecode cache directory as `uv cache` and
//! `ccache -s` present theirs.

use std::path::Path;

use super::disk::DiskTier;
use super::{CacheError, stats};
use crate::cli::{CacheCommand, StatsFormat};
use crate::report::{self, Style};
use crate::{Error, ExitStatus};

/// What the cache commands find at the cache directory's path.
enum Opened {
    /// Nothing (the first build creates the directory).
    Missing,
    /// An empty directory (a cache mount's target before the first build, a `mkdir`): the
    /// first build makes it a cache. Nothing is written into it, not even a lock file.
    Empty,
    Cache(DiskTier),
}

/// The cache at `dir`: a missing or empty directory is an empty cache for every command. A
/// file in its place, a directory that cannot be read or one holding files that are not
/// hashpyc's stays an error naming the path and the reason.
fn open(dir: &Path) -> Result<Opened, Error> {
    let tier = match DiskTier::existing(dir) {
        Ok(tier) => tier,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Opened::Missing),
        Err(e) => {
            return Err(CacheError::Open { path: dir.to_path_buf(), source: super::in_words(&e) }.into());
        }
    };
    // A directory it may not read is no "not a cache": say why.
    if let Some(e) = tier.unreadable() {
        return Err(CacheError::Open { path: dir.to_path_buf(), source: super::in_words(&e) }.into());
    }
    if tier.looks_like_cache() {
        Ok(Opened::Cache(tier))
    } else if tier.is_unused() {
        Ok(Opened::Empty)
    } else {
        Err(CacheError::NotACache(dir.to_path_buf()).into())
    }
}

/// [`open`] of the directory of a `cache` command, an error about it naming where it was set
/// when not by `--cache` (`(set by `cache` in `hashpyc.toml` line 1)`), as `compile` says it.
fn open_set(dir: &crate::cli::CacheDirArg) -> Result<Opened, Error> {
    open(dir.path()).map_err(|e| match e {
        Error::Cache(e) => Error::Usage(super::described(&e, dir.dir_from.as_deref())),
        e => e,
    })
}

impl Opened {
    fn tier(&self) -> Option<&DiskTier> {
        match self {
            Opened::Cache(tier) => Some(tier),
            _ => None,
        }
    }

    /// `note: `DIR` does not exist yet; …` (or `is empty; …`), on stderr, for a cache no
    /// build has used: `what` the command found to do.
    fn note(&self, dir: &Path, what: &str) {
        let state = match self {
            Opened::Missing => ("does not exist yet", "creates it"),
            Opened::Empty => ("is empty", "makes it a cache"),
            Opened::Cache(_) => return,
        };
        report::eprint_line(&format!(
            "note: {} {}; {what} (a build with this cache directory {})",
            report::ticked(dir),
            state.0,
            state.1
        ));
    }
}

/// `1.2 GiB`, `340 KiB`, `12 B`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// `quiet` (`-q`): no notes and no `Removed …` line (the statistics on stdout are data).
pub fn run(cmd: &CacheCommand, style: Style, quiet: u8) -> Result<ExitStatus, Error> {
    let note = |opened: &Opened, dir: &Path, what: &str| {
        if quiet == 0 {
            opened.note(dir, what);
        }
    };
    let said = |line: String| {
        if quiet == 0 {
            report::eprint_line(&line);
        }
    };
    match cmd {
        CacheCommand::Stats { dir, format, .. } => {
            let opened = open_set(dir)?;
            let tier = opened.tier();
            let (entries, temps) = match tier {
                Some(tier) => tier.scan().map_err(|e| CacheError::item(dir.path(), e))?,
                None => Default::default(),
            };
            let bytes: u64 = entries.iter().map(|e| e.size).sum();
            let rec = tier.map(stats::read).unwrap_or_default();
            note(&opened, dir.path(), "0 entries");
            let root = tier.map_or(dir.path(), DiskTier::root);
            let mut out = std::io::stdout().lock();
            if *format == StatsFormat::Json {
                let mut tiers = serde_json::Map::new();
                for (name, t) in &rec.tiers {
                    tiers.insert(name.clone(), serde_json::to_value(t).expect("totals serialize"));
                }
                let v = serde_json::json!({
                    "type": "cache",
                    "cache": crate::report::JsonPath(root),
                    "exists": !matches!(opened, Opened::Missing),
                    "entries": entries.len(),
                    "bytes": bytes,
                    "temporary_files": temps.len(),
                    "since": rec.since,
                    "runs": rec.runs,
                    "tiers": tiers,
                });
                report::out_line(&mut out, v)?;
            } else {
                let mut lines = vec![
                    format!("{}", style.bold(&format!("Bytecode cache {}", report::ticked(root)))),
                    format!("  entries      {}", entries.len()),
                    format!("  size         {} on disk", human_size(bytes)),
                ];
                if rec.runs > 0 {
                    lines.push(format!("  runs         {} since {}", rec.runs, since(rec.since)));
                }
                for (name, t) in &rec.tiers {
                    let lookups = t.hits + t.misses;
                    let rate = if lookups > 0 {
                        format!(" ({:.0}% hits)", 100.0 * t.hits as f64 / lookups as f64)
                    } else {
                        String::new()
                    };
                    lines.push(format!("  {name:<12} {}", t.describe(&rate, name == "remote")));
                }
                report::out_line(&mut out, lines.join("\n"))?;
            }
            Ok(ExitStatus::Success)
        }
        CacheCommand::Prune { dir, max_size, max_size_from } => {
            let max_size = max_size.expect("limit resolved by apply_config");
            let opened = open_set(dir)?;
            let Opened::Cache(tier) = opened else {
                note(&opened, dir.path(), "nothing to prune");
                return Ok(ExitStatus::Success);
            };
            let p = tier
                .locked("prune.lock", true, || tier.prune(max_size))
                .unwrap_or_else(|| tier.prune(max_size))
                .map_err(|e| CacheError::item(dir.path(), e))?;
            stats::pruned(&tier, p.size);
            said(format!(
                "Removed {} ({}); {} left ({}); limit {} ({max_size_from})",
                report::plural(p.removed, "entry", "entries"),
                human_size(p.freed),
                report::plural(p.left, "entry", "entries"),
                human_size(p.size),
                human_size(max_size)
            ));
            match p.error {
                _ if p.interrupted => Err(Error::Interrupted),
                Some(e) => Err(CacheError::item(dir.path(), e).into()),
                None => Ok(ExitStatus::Success),
            }
        }
        CacheCommand::Clean { dir } => {
            let opened = open_set(dir)?;
            let Opened::Cache(tier) = opened else {
                note(&opened, dir.path(), "nothing to clean");
                return Ok(ExitStatus::Success);
            };
            let c = tier.clean().map_err(|e| CacheError::item(dir.path(), e))?;
            // Interrupted: what is left, as `cache prune` says it, and the statistics know.
            let left = if c.interrupted {
                stats::pruned(&tier, c.size);
                format!("; {} left ({})", report::plural(c.left, "entry", "entries"), human_size(c.size))
            } else {
                String::new()
            };
            said(format!(
                "Removed {} ({}) from {}{left}",
                report::plural(c.removed, "entry", "entries"),
                human_size(c.freed),
                report::ticked(tier.root())
            ));
            if c.interrupted {
                return Err(Error::Interrupted);
            }
            Ok(ExitStatus::Success)
        }
    }
}

/// `2026-12-01 22:40 UTC` for a Unix time.
fn since(secs: u64) -> String {
    let days = secs / 86_400;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02} {h:02}:{m:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_dates_read_well() {
        assert_eq!(human_size(12), "12 B");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
        assert_eq!(since(0), "1970-01-01 00:00 UTC");
        assert_eq!(since(1_796_086_800), "2026-12-01 01:00 UTC");
    }
}
