//! Retrying a remote request that met a transient failure (HTTP 500, 502, 503, 504 or 429,
//! a connection reset or closed before the response, the system resolver's temporary
//! failure: see [`TierError::Transient`]), as the
//! AWS SDKs' standard mode does. Every request the cache makes is idempotent (a GET, or the
//! PUT of an entry whose key is its content), so sending it again is safe.
//!
//! Bounded three ways, so that a server in trouble still costs seconds at most: a few
//! attempts with short jittered waits; no retry starts later than one time limit after
//! the first attempt did (a request costs at most two time limits, however slowly a server
//! answers 503); and none at all once the tier has been switched off by another request.
//! A timeout is never retried (a server that stops answering costs one time limit, once),
//! nor any other failure (401/403, 404, TLS, a host name that does not resolve, a refused
//! connection, a damaged entry).

use std::time::{Duration, Instant};

use super::super::tier::TierError;

/// The longest `Retry-After` waited for; a server asking for more is not retried (a build
/// cannot wait that long), and its answer is a failure.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(1);

/// The longest `Retry-After` a lookup waits for: its first retry's longest wait, so that
/// waiting for what a server asks never makes a lookup's waits longer than its own backoff
/// (350 ms in all). A lookup asked to wait longer (up to [`RETRY_AFTER_MAX`]) is not sent
/// again: it ends throttled, a miss, and the file is compiled (a lookup is only an
/// optimisation; a second a lookup held 128 of them a second and stalled the build).
pub const LOOKUP_RETRY_AFTER_MAX: Duration = Duration::from_millis(100);

/// How a kind of request is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Before each retry, a wait drawn between these bounds (milliseconds); one retry
    /// per entry, so `waits.len() + 1` attempts at most.
    waits: &'static [(u64, u64)],
    /// No retry starts later than this after the first attempt did (the request's time limit).
    budget: Duration,
    /// The longest `Retry-After` waited for; a longer one (up to [`RETRY_AFTER_MAX`]) ends
    /// the request with that answer, not retried.
    asked_max: Duration,
}

impl Policy {
    /// Lookups, which a build waits on (and credential fetches, made before one): three
    /// attempts, waits of 50–100 and 150–250 ms, 350 ms at most in all, less than the 500 ms
    /// after which idle workers stop waiting for lookups.
    pub fn lookups(timeout: Duration) -> Policy {
        Policy { waits: &[(50, 100), (150, 250)], budget: timeout, asked_max: LOOKUP_RETRY_AFTER_MAX }
    }

    /// Uploads, which run in the background and whose loss costs every later build a
    /// compile: four attempts, waits of 50–100, 200–400 and 400–800 ms, or the
    /// `Retry-After` asked, up to [`RETRY_AFTER_MAX`].
    pub fn uploads(timeout: Duration) -> Policy {
        Policy { waits: &[(50, 100), (200, 400), (400, 800)], budget: timeout, asked_max: RETRY_AFTER_MAX }
    }

    /// Whether a `Retry-After` of `asked` is waited for (else the request is not retried).
    pub fn waits_for(&self, asked: Duration) -> bool {
        asked <= self.asked_max
    }

    /// At most this many attempts.
    pub fn attempts(&self) -> usize {
        self.waits.len() + 1
    }

    /// The wait before retry `n` (0 for the first), `jitter` in [0, 1): drawn between that
    /// retry's bounds, or what `Retry-After` asked when it is longer.
    fn wait(&self, n: usize, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let (from, to) = self.waits[n];
        let drawn = Duration::from_millis(from + ((to - from) as f64 * jitter) as u64);
        drawn.max(retry_after.unwrap_or_default())
    }

    /// No retry starts later than this after the first attempt did (the request's time
    /// limit).
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// `request`, sent again after a transient failure while attempts and the time budget
    /// last and `go_on()` holds (the tier is still on); `retried` is called before each
    /// retry. A transient failure that is the last becomes a plain one, saying how many
    /// attempts were made when there were several.
    pub fn run<T>(
        &self,
        mut request: impl FnMut() -> Result<T, TierError>,
        go_on: impl Fn() -> bool,
        retried: impl Fn(),
    ) -> Result<T, TierError> {
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (message, retry_after) = match request() {
                Err(TierError::Transient { message, retry_after }) => (message, retry_after),
                done => return done,
            };
            let tried = || match attempts {
                1 => message.clone(),
                n => format!("{message} (after {n} attempts)"),
            };
            if let Some(asked) = retry_after.filter(|a| *a > RETRY_AFTER_MAX) {
                let more = if asked == Duration::MAX { "more than " } else { "" };
                return Err(TierError::Failed(format!(
                    "{} (the server asked to retry after {more}{} s; not waited for)",
                    tried(),
                    asked.as_secs()
                )));
            }
            // Longer than this kind of request waits (a lookup): not retried.
            if attempts >= self.attempts() || !go_on() || retry_after.is_some_and(|a| !self.waits_for(a)) {
                return Err(TierError::Failed(tried()));
            }
            let wait = self.wait(attempts - 1, retry_after, jitter());
            if started.elapsed() + wait >= self.budget {
                return Err(TierError::Failed(tried()));
            }
            std::thread::sleep(wait);
            if !go_on() {
                return Err(TierError::Failed(tried()));
            }
            retried();
        }
    }
}

/// Whether `e` is a server's throttling (HTTP 429 or 503, as S3's `SlowDown`: too many
/// requests at once) that a client may retry soon: not one asking for more than
/// [`RETRY_AFTER_MAX`], which is not retried and stays a failure.
pub fn throttled(e: &TierError) -> bool {
    match e {
        TierError::Transient { message, retry_after } => {
            (message.ends_with(": HTTP 429") || message.ends_with(": HTTP 503"))
                && retry_after.is_none_or(|a| a <= RETRY_AFTER_MAX)
        }
        _ => false,
    }
}

/// A number in [0, 1), different at each call (std's randomly keyed hasher: jitter needs
/// no more), so that requests failed together are not retried together.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// `Retry-After` (RFC 9110: delay-seconds, or an HTTP date, read as the time from now until
/// then, none for a date passed); [`Duration::MAX`] for a number of seconds too large to
/// hold (longer than any wait). None for what is neither.
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    let value = value?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(value.parse::<u64>().map_or(Duration::MAX, Duration::from_secs));
    }
    let date = http_date(value)?;
    Some(date.duration_since(jiff::Timestamp::now()).try_into().unwrap_or(Duration::ZERO))
}

/// An HTTP date: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), or either obsolete form
/// RFC 9110 has recipients accept (`Sunday, 06-Nov-94 08:49:37 GMT`, `Sun Nov  6 08:49:37 1994`).
fn http_date(value: &str) -> Option<jiff::Timestamp> {
    if let Ok(t) = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value) {
        return Some(t);
    }
    let obsolete = ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"];
    let time = obsolete.iter().find_map(|f| jiff::fmt::strtime::parse(f, value).ok()?.to_datetime().ok())?;
    jiff::tz::TimeZone::UTC.to_timestamp(time).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn transient(m: &str, after: Option<u64>) -> TierError {
        TierError::Transient { message: m.into(), retry_after: after.map(Duration::from_secs) }
    }

    /// Run `policy` over `answers` (one per attempt); what it returned and the attempts.
    fn over(policy: Policy, answers: Vec<Result<u8, TierError>>, on: bool) -> (Result<u8, TierError>, usize) {
        let sent = Cell::new(0);
        let retries = Cell::new(0);
        let out = policy.run(
            || {
                sent.set(sent.get() + 1);
                answers[sent.get() - 1].clone()
            },
            || on,
            || retries.set(retries.get() + 1),
        );
        assert_eq!(retries.get() + 1, sent.get(), "one retry counted per attempt after the first");
        (out, sent.get())
    }

    #[test]
    fn transient_failures_are_retried_while_attempts_last() {
        let p = Policy::lookups(Duration::from_secs(2));
        let e500 = || transient("GET: HTTP 500", None);
        assert_eq!(over(p, vec![Err(e500()), Ok(7)], true), (Ok(7), 2));
        assert_eq!(
            over(p, vec![Err(e500()), Err(e500()), Err(e500())], true),
            (Err(TierError::Failed("GET: HTTP 500 (after 3 attempts)".into())), 3)
        );
        let up = Policy::uploads(Duration::from_secs(10));
        assert_eq!(up.attempts(), 4);
        let (out, sent) = over(up, vec![Err(e500()), Err(e500()), Err(e500()), Err(e500())], true);
        assert_eq!((out.unwrap_err().to_string(), sent), ("GET: HTTP 500 (after 4 attempts)".into(), 4));
        // Others are not retried, and stay what they were.
        for e in [TierError::Failed("GET: HTTP 403".into()), TierError::Timeout("timed out".into())] {
            assert_eq!(over(p, vec![Err(e.clone()), Ok(1)], true), (Err(e), 1));
        }
        // Switched off meanwhile: no retry.
        assert_eq!(
            over(p, vec![Err(e500()), Ok(1)], false),
            (Err(TierError::Failed("GET: HTTP 500".into())), 1)
        );
        // No retry after the budget: a wait would pass it.
        let tight = Policy::lookups(Duration::from_millis(40));
        assert_eq!(over(tight, vec![Err(e500()), Ok(1)], true).1, 1);
    }

    #[test]
    fn throttling_is_told_apart() {
        assert!(throttled(&transient("GET: HTTP 503", None)));
        assert!(throttled(&transient("PUT: HTTP 429", Some(1))));
        // A long Retry-After is not waited out: a failure, as before.
        assert!(!throttled(&transient("GET: HTTP 503", Some(120))));
        assert!(!throttled(&transient("GET: HTTP 500", None)));
        assert!(!throttled(&TierError::Failed("GET: HTTP 503 (after 3 attempts)".into())));
    }

    #[test]
    fn retry_after_is_waited_for_when_short() {
        let p = Policy::uploads(Duration::from_secs(10));
        for j in [0.0, 0.5, 0.999] {
            let w = p.wait(0, None, j);
            assert!((50..=100).contains(&w.as_millis()), "{w:?}");
            assert!((400..=800).contains(&p.wait(2, None, j).as_millis()));
        }
        assert_eq!(p.wait(0, Some(Duration::from_secs(1)), 0.5), Duration::from_secs(1));
        assert_eq!(p.wait(1, Some(Duration::ZERO), 0.0), Duration::from_millis(200));
        assert_eq!(retry_after(Some(" 1 ")), Some(Duration::from_secs(1)));
        assert_eq!(retry_after(None), None);
        assert_eq!(retry_after(Some("soon")), None);
        // A date: the time until then (none once passed), in each form RFC 9110 names.
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), Some(Duration::ZERO));
        let in_an_hour = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
        let fixdate =
            jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_rfc9110_string(&in_an_hour).unwrap();
        let dt = jiff::tz::TimeZone::UTC.to_datetime(in_an_hour);
        for date in [
            fixdate,
            dt.strftime("%A, %d-%b-%y %H:%M:%S GMT").to_string(),
            dt.strftime("%a %b %e %H:%M:%S %Y").to_string(),
        ] {
            let asked = retry_after(Some(&date)).unwrap_or_else(|| panic!("{date}"));
            assert!((3590..=3600).contains(&asked.as_secs()), "{date}: {asked:?}");
        }
        // Too many seconds to hold: longer than any wait.
        assert_eq!(retry_after(Some("18446744073709551616")), Some(Duration::MAX));
        let (out, sent) = over(
            p,
            vec![
                Err(TierError::Transient {
                    message: "GET: HTTP 503".into(),
                    retry_after: Some(Duration::MAX),
                }),
                Ok(1),
            ],
            true,
        );
        assert_eq!(
            (out.unwrap_err().to_string(), sent),
            ("GET: HTTP 503 (the server asked to retry after more than 18446744073709551615 s; not waited for)".into(), 1)
        );
        // Longer than a build waits: not retried, and said so.
        let (out, sent) = over(p, vec![Err(transient("PUT: HTTP 503", Some(120))), Ok(1)], true);
        assert_eq!(
            (out.unwrap_err().to_string(), sent),
            ("PUT: HTTP 503 (the server asked to retry after 120 s; not waited for)".into(), 1)
        );
        let (out, sent) = over(p, vec![Err(transient("PUT: HTTP 429", Some(1))), Ok(1)], true);
        assert_eq!((out, sent), (Ok(1), 2));
        // A lookup waits no longer than its own backoff: asked for a second, it is not sent
        // again (throttled, a miss); asked for no time, it is.
        let lookups = Policy::lookups(Duration::from_secs(2));
        let (out, sent) = over(lookups, vec![Err(transient("GET: HTTP 503", Some(1))), Ok(1)], true);
        assert_eq!((out, sent), (Err(TierError::Failed("GET: HTTP 503".into())), 1));
        assert!(throttled(&transient("GET: HTTP 503", Some(1))));
        assert_eq!(over(lookups, vec![Err(transient("GET: HTTP 429", Some(0))), Ok(1)], true), (Ok(1), 2));
        let jitters: std::collections::HashSet<u64> = (0..20).map(|_| (jitter() * 1e9) as u64).collect();
        assert!(jitters.len() > 10 && (0..100).all(|_| (0.0..1.0).contains(&jitter())));
    }
}
