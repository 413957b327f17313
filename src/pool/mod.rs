//! Python worker processes: each is a *zygote* running the embedded `worker.py`, started
//! once with `-S -s [-P] -B`, `PYTHONHASHSEED=0` and no other PYTHON* variable. The zygote
//! never compiles; it forks either a long-lived child that compiles many files, or a
//! one-shot child per file, so a one-shot compile always starts from the same pristine
//! state (see `target::Isolation` for which is used when).
//!
//! Everything here is synchronous and bounded: each read and write polls against the
//! per-file deadline, stderr is drained by a thread into a small ring buffer, and a
//! worker that misbehaves in any way is killed (its whole process group) and replaced.

pub mod frame;
pub mod predict;
pub mod schedule;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;

pub use frame::{CompileFailure, Warning};
use frame::{FrameError, Job, Message, Request};

use crate::interrupt;
use crate::target::Target;

/// The worker script, shipped inside the binary.
pub const WORKER_SCRIPT: &str = include_str!("worker.py");
/// The worker's whole command line (`-c` code): read the worker script, whose length is
/// the first argument, from stdin and run it. Short and recognisable in `ps`.
const BOOTSTRAP: &str = "#hashpyc-worker
import sys,posix
n=int(sys.argv[1]);s=b''
while len(s)<n:
 d=posix.read(0,n-len(s))
 if not d:raise SystemExit(3)
 s+=d
exec(s)";
/// How long a worker may take to start and say hello, at least.
const MIN_STARTUP: Duration = Duration::from_secs(30);
const STDERR_TAIL: usize = 4096;

/// Why a worker could not deliver a result. The worker is unusable afterwards.
#[derive(Debug, Error, Clone)]
pub enum WorkerFailure {
    #[error("the Python worker failed to start{}", tail(.0))]
    Start(String),
    /// The worker's process could not be started for a process or memory limit (EAGAIN,
    /// ENOMEM): the reason in words ([`crate::io::start_reason`]).
    #[error("the Python worker failed to start: {0}")]
    NoProcess(String),
    #[error("the Python worker did not start within {} s (interpreter too slow, or hung)", .0.as_secs())]
    StartTimeout(Duration),
    #[error("the Python worker died: {0}")]
    Died(String),
    #[error("timed out after {} s in the Python worker", .0.as_secs_f64())]
    TimedOut(Duration),
    #[error("the Python worker broke the protocol: {0}")]
    Protocol(String),
    #[error(
        "the Python worker reports {what} {found}, but the probe said {expected}: the interpreter changed \
         since it was probed (a launcher script now running another Python, or with other settings?); \
         the probe is forgotten, \
         so run again"
    )]
    Changed { what: &'static str, found: String, expected: String },
    #[error("interrupted")]
    Interrupted,
    /// The run's own descriptors ran out (EMFILE) as a worker was started.
    #[error(
        "hashpyc ran out of file descriptors as it started a Python worker (the open-file limit, `ulimit -n`, is {}): \
         run fewer workers (-j) or raise the limit",
        .0.map_or("unknown".to_string(), |n| n.to_string())
    )]
    Descriptors(Option<u64>),
    /// The open-file limit leaves no room for a worker (the run's own descriptors
    /// counted), found when the first one is needed: a build the cache serves needs none.
    #[error("the open-file limit (`ulimit -n`: {0}) leaves no room for a Python worker; raise it")]
    NoRoom(u64),
    /// A thread the workers need could not be started (reported as the run's
    /// [`crate::Error::Thread`]).
    #[error("cannot start a thread: {0}")]
    Thread(String),
    /// The worker could not fork the process a compile runs in (a process or memory
    /// limit): the reason in words ([`crate::io::start_reason`]). Ends the run.
    #[error("cannot start a Python process: {0}")]
    Fork(String),
}

impl WorkerFailure {
    /// Why a process or memory limit kept a worker from starting or forking (a container's
    /// pids limit, `ulimit -u`, `ulimit -v`), in words; None for any other failure. Other
    /// workers may still run: the pool goes on with fewer (see `schedule::Slot::limited`).
    pub fn limit_reason(&self) -> Option<&str> {
        match self {
            WorkerFailure::NoProcess(reason)
            | WorkerFailure::Fork(reason)
            | WorkerFailure::Thread(reason) => Some(reason),
            _ => None,
        }
    }
}

/// What [`WorkerFailure::Changed`] names when the worker's interpreter is the build probed
/// and only a setting it runs with differs (see `changed`, which compares the build first).
const SETTINGS: [&str; 4] =
    ["column positions", "int_max_str_digits", "sys.flags.optimize", "sys.pycache_prefix"];

impl WorkerFailure {
    /// Whether the worker runs the build probed with other settings (a launcher's flags from
    /// a variable its key does not see): a new probe describes it.
    pub fn settings_changed(&self) -> bool {
        matches!(self, WorkerFailure::Changed { what, .. } if SETTINGS.contains(what))
    }

    /// What differs, for a message: `column positions on, the probe said off`.
    pub fn changed_setting(&self) -> Option<String> {
        match self {
            WorkerFailure::Changed { what, found, expected } => {
                Some(format!("the Python worker reports {what} {found}, the probe said {expected}"))
            }
            _ => None,
        }
    }
}

/// The failure the zygote's note that it could not fork (errno) stands for.
fn fork_failure(errno: i32) -> WorkerFailure {
    WorkerFailure::Fork(crate::io::start_reason(&std::io::Error::from_raw_os_error(errno)))
}

/// How a worker ended by signal `sig` is described. SIGKILL is what the kernel's OOM killer
/// sends when a memory limit is reached (`docker run --memory`): the words say so and what
/// to do, where the signal's number alone said nothing.
pub(crate) fn killed_by(sig: i32) -> String {
    if sig == libc::SIGKILL {
        format!(
            "killed by signal {sig} (SIGKILL), as the kernel's OOM killer ends a process when a memory \
             limit is reached (`docker run --memory`, a cgroup's `memory.max`): give the run more memory, \
             or fewer workers (`-j`)"
        )
    } else {
        format!("killed by signal {sig}")
    }
}

/// `: ` and what a worker last wrote to stderr (a few KiB), control characters escaped
/// line by line ([`crate::report::printable`]), or nothing when it wrote nothing.
fn tail(s: &str) -> String {
    if s.trim().is_empty() {
        return String::new();
    }
    let lines: Vec<_> = s.trim().lines().map(crate::report::printable).collect();
    format!(": {}", lines.join("\n"))
}

/// A compile's result as the worker reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Compiled { warnings: Vec<Warning>, bodies: Vec<Vec<u8>> },
    Failed(CompileFailure),
}

/// What a long-lived compile adds: whether the child was pristine before it, and whether
/// the compile imported a module (which changes the child for good).
#[derive(Debug, Clone, Copy)]
pub struct LongLivedInfo {
    pub first_in_child: bool,
    pub modules_changed: bool,
    /// The job asked for a certificate and got it (see [`frame::Message::Compiled`]).
    pub certified: bool,
}

/// How to start workers for one target.
#[derive(Clone)]
pub struct WorkerSpec {
    pub target: Arc<Target>,
    pub script: Arc<str>,
    pub timeout: Option<Duration>,
    /// Where the timeout was set, for the error of a compile that ran out of it:
    /// `--timeout`, `HASHPYC_TIMEOUT`, or a file's `timeout = …` and its line.
    pub timeout_from: String,
}

impl WorkerSpec {
    pub fn new(target: Arc<Target>, timeout: Option<Duration>) -> Self {
        // A stand-in worker for fault-injection tests (crashing, hanging, flooding ones).
        let script = std::env::var_os("HASHPYC_WORKER_SCRIPT")
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_else(|| WORKER_SCRIPT.to_string());
        WorkerSpec { target, script: script.into(), timeout, timeout_from: "--timeout".into() }
    }
}

/// One zygote process and, at times, its long-lived child.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    /// Replies (and the hello), from whichever process is compiling.
    data: Channel,
    /// The zygote's notes about its children: ended, died.
    control: Channel,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    timeout: Option<Duration>,
    child_running: bool,
    child_compiles: u32,
    /// Long-lived children forked so far: a new one means a new history.
    generation: u64,
    /// What each new long-lived child probes before its first compile
    /// ([`Request::StartChild`]).
    birth_words: Vec<u8>,
    /// The last new child's answer to `birth_words` ([`Message::Birth`]), until taken.
    birth: Option<Vec<u8>>,
    /// Requests sent to the long-lived child ahead of their turn, oldest first: the
    /// caller's tag for each, whether it was the child's first, and its time limit (counted
    /// from the write of its group).
    inflight: VecDeque<(usize, bool, Option<Instant>)>,
}

/// How files were compiled in this process, for `HASHPYC_TRACE`: long-lived children
/// forked, compiles done in them, children ended because a compile tainted them, one-shot
/// fresh forks, and why files went to one (predicted from the source, or found suspect
/// after a compile in a long-lived child), and files whose frozensets a long-lived child
/// certified (tried: asked for a certificate; certified: got one, no fork needed).
pub struct Stats {
    pub long_children: AtomicU64,
    pub long_compiles: AtomicU64,
    pub tainted: AtomicU64,
    pub fresh_forks: AtomicU64,
    pub predicted: AtomicU64,
    pub suspects: AtomicU64,
    pub certify_tried: AtomicU64,
    pub certified: AtomicU64,
    /// Deferred files compiled in long-lived children of their own (3.13+), and those of
    /// them certified by probing.
    pub batched: AtomicU64,
    pub probed: AtomicU64,
    /// Compiles sent to long-lived children in groups (see `schedule::Slot::run`), and
    /// those whose reply was dropped because their child had to end before its turn.
    pub grouped: AtomicU64,
    pub dropped: AtomicU64,
    /// Workers the pool's slots started or took (none in a build served by the cache).
    pub workers: AtomicU64,
}

pub static STATS: Stats = Stats {
    long_children: AtomicU64::new(0),
    long_compiles: AtomicU64::new(0),
    tainted: AtomicU64::new(0),
    fresh_forks: AtomicU64::new(0),
    predicted: AtomicU64::new(0),
    suspects: AtomicU64::new(0),
    certify_tried: AtomicU64::new(0),
    certified: AtomicU64::new(0),
    batched: AtomicU64::new(0),
    probed: AtomicU64::new(0),
    grouped: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
    workers: AtomicU64::new(0),
};

/// A pool run that went on with fewer workers than it meant to, for a process or memory
/// limit (see `schedule::Slot::limited`): how many it meant to run, how many went on, and
/// why the others could not (the first reason, in words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fewer {
    pub planned: usize,
    pub running: usize,
    pub reason: String,
}

/// Set by each pool run (`schedule::run`) that went on with fewer workers; read once the
/// run is over, for its one warning.
pub static FEWER: Mutex<Option<Fewer>> = Mutex::new(None);

impl Stats {
    pub fn summary(&self) -> String {
        let get = |a: &AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        format!(
            "{} compiles in {} long-lived children ({} ended after a compile that changed them), \
             {} fresh forks ({} predicted from the source, {} suspects recompiled); \
             frozensets certified in long-lived children for {} of {} files tried; \
             {} deferred files in long-lived children of their own ({} certified by probing); \
             {} compiles sent in groups ({} replies dropped: their child had to end)",
            get(&self.long_compiles),
            get(&self.long_children),
            get(&self.tainted),
            get(&self.fresh_forks),
            get(&self.predicted),
            get(&self.suspects),
            get(&self.certified),
            get(&self.certify_tried),
            get(&self.batched),
            get(&self.probed),
            get(&self.grouped),
            get(&self.dropped)
        )
    }
}

/// One pipe we read frames from, with what has arrived but not been parsed yet.
struct Channel {
    file: std::fs::File,
    buf: Vec<u8>,
    eof: bool,
}

impl Channel {
    fn new(file: std::fs::File) -> Channel {
        set_nonblocking(file.as_raw_fd());
        Channel { file, buf: Vec::new(), eof: false }
    }

    /// Read what is available without blocking; false when nothing was. The pipe is read
    /// straight into the buffer's spare capacity (no intermediate copy, no size probe): on
    /// a non-blocking descriptor the read returns `Ok` only at end of file, and on
    /// `WouldBlock` keeps what it read.
    fn fill(&mut self) -> bool {
        let before = self.buf.len();
        if crate::io::read_to_end_direct(&self.file, &mut self.buf).is_ok() {
            self.eof = true;
        }
        self.buf.len() > before
    }

    /// A complete frame, if one has arrived.
    fn frame(&mut self) -> Option<Result<Message, WorkerFailure>> {
        if self.buf.len() < 4 {
            return None;
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > frame::MAX_FRAME {
            return Some(Err(WorkerFailure::Protocol(FrameError::TooLarge(len as u64).to_string())));
        }
        if self.buf.len() < 4 + len {
            return None;
        }
        let message =
            frame::decode(&self.buf[4..4 + len]).map_err(|e| WorkerFailure::Protocol(e.to_string()));
        self.buf.drain(..4 + len);
        Some(message)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Why a worker could not be started: hashpyc's own descriptors ran out, or the reason.
fn start_failure(e: &std::io::Error) -> WorkerFailure {
    match e.raw_os_error() {
        Some(libc::EMFILE) => WorkerFailure::Descriptors(crate::io::open_file_limit()),
        Some(libc::EAGAIN | libc::ENOMEM) => WorkerFailure::NoProcess(crate::io::start_reason(e)),
        _ => WorkerFailure::Start(crate::io::start_reason(e)),
    }
}

/// A pipe whose write end the worker gets as fd 3.
fn control_pipe() -> std::io::Result<(std::fs::File, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe { Ok((std::fs::File::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1]))) }
}

impl Worker {
    /// Start a zygote and wait for its hello.
    pub fn spawn(spec: &WorkerSpec) -> Result<Worker, WorkerFailure> {
        if interrupt::requested() {
            return Err(WorkerFailure::Interrupted);
        }
        // What killed workers left, where hashpyc adopts orphans: room under a pids limit.
        interrupt::reap_orphans();
        let target = &spec.target;
        let (control_read, control_write) = control_pipe().map_err(|e| start_failure(&e))?;
        let control_fd = control_write.as_raw_fd();
        let mut cmd = crate::target::python_command(&target.executable);
        cmd.args(["-S", "-s", "-B"]);
        if target.minor() >= (3, 11) {
            cmd.arg("-P");
        }
        cmd.arg("-c")
            .arg(BOOTSTRAP)
            .arg(spec.script.len().to_string())
            .arg(if target.flag_ref_top { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: only async-signal-safe calls between fork and exec: dup2 onto fd 3
        // (which also clears close-on-exec there).
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(control_fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| start_failure(&e))?;
        drop(control_write);
        interrupt::register(child.id());
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let sink = Arc::clone(&stderr);
        let drain = std::thread::Builder::new().name("hashpyc-stderr".into()).spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut tail = sink.lock().expect("stderr lock");
                tail.extend(&buf[..n]);
                let excess = tail.len().saturating_sub(STDERR_TAIL);
                tail.drain(..excess);
            }
        });
        if let Err(e) = drain {
            // The zygote, waiting for its script, is ended and reaped: under a pids limit
            // a zombie would hold a process the pool goes on without.
            // SAFETY: kill(2) on our own child's process group; no memory is touched.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
            interrupt::unregister(child.id());
            interrupt::reap_group(child.id());
            return Err(WorkerFailure::Thread(crate::io::start_reason(&e)));
        }
        set_nonblocking(stdin.as_raw_fd());
        // Room for a group of requests, and for its replies, in one write each.
        for fd in [stdin.as_raw_fd(), stdout.as_raw_fd()] {
            // SAFETY: fcntl on pipe descriptors we own; failure only leaves the default size.
            unsafe {
                libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20);
            }
        }
        let data = Channel::new(std::fs::File::from(std::os::fd::OwnedFd::from(stdout)));
        let mut w = Worker {
            child,
            stdin,
            data,
            control: Channel::new(control_read),
            stderr,
            timeout: spec.timeout,
            child_running: false,
            child_compiles: 0,
            generation: 0,
            birth_words: Vec::new(),
            birth: None,
            inflight: VecDeque::new(),
        };
        let startup = spec.timeout.map_or(MIN_STARTUP, |t| t.max(MIN_STARTUP));
        let deadline = Some(Instant::now() + startup);
        // Any failure below drops `w`, which kills the zygote's process group: one that
        // broke the protocol is still waiting for requests on its stdin.
        match w.write_all(&[spec.script.as_bytes()], deadline) {
            Ok(()) => {}
            Err(WorkerFailure::TimedOut(_)) => return Err(WorkerFailure::StartTimeout(startup)),
            Err(WorkerFailure::Died(_)) => return Err(WorkerFailure::Start(w.start_failure())),
            Err(e) => return Err(e),
        }
        match w.hello(deadline) {
            Ok(hello @ Message::Hello { .. }) => match changed(target, &hello) {
                None => Ok(w),
                Some(failure) => Err(failure),
            },
            Ok(other) => Err(WorkerFailure::Protocol(format!("expected a hello, got {other:?}"))),
            Err(WorkerFailure::TimedOut(_)) => Err(WorkerFailure::StartTimeout(startup)),
            Err(WorkerFailure::Died(_)) => Err(WorkerFailure::Start(w.start_failure())),
            Err(e) => Err(e),
        }
    }

    /// The zygote's first frame, which must be its hello: output that cannot begin one (a
    /// wrapper script's line printed before it `exec`s Python) is a protocol error at once,
    /// naming what was printed, rather than a wait for a frame that never completes.
    fn hello(&mut self, deadline: Option<Instant>) -> Result<Message, WorkerFailure> {
        loop {
            if !may_begin_hello(&self.data.buf) {
                // The rest of its line, if it comes soon.
                let soon = Instant::now() + Duration::from_millis(200);
                let until = deadline.map_or(soon, |d| d.min(soon));
                while !self.data.eof
                    && !self.data.buf.contains(&b'\n')
                    && self.data.buf.len() < 200
                    && self.pump(Some(until)).is_ok()
                {}
                return Err(WorkerFailure::Protocol(format!(
                    "it printed `{}` on stdout instead of its hello (a wrapper script that prints?)",
                    printed(&self.data.buf)
                )));
            }
            if let Some(m) = self.data.frame() {
                return m;
            }
            if self.data.eof {
                return Err(self.eof());
            }
            self.pump(deadline)?;
        }
    }

    /// Why a zygote that was starting ended: its exit status or signal (it closed its
    /// output, so it is given a moment to exit), and its last words on stderr. Kills its
    /// process group.
    fn start_failure(&mut self) -> String {
        let until = Instant::now() + Duration::from_secs(2);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < until && !interrupt::requested() => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => break None,
            }
        };
        self.kill();
        // Give the stderr thread a moment to collect the interpreter's last words.
        std::thread::sleep(Duration::from_millis(20));
        let how = match status {
            Some(s) => match s.signal() {
                Some(sig) => killed_by(sig),
                None => format!("exited with status {}", s.code().unwrap_or(-1)),
            },
            None => "closed its output".to_string(),
        };
        format!("{how}{}", tail(&self.stderr_text()))
    }

    /// The last few KiB the worker wrote to stderr.
    pub fn stderr_text(&self) -> String {
        let tail = self.stderr.lock().expect("stderr lock");
        let (a, b) = tail.as_slices();
        String::from_utf8_lossy(&[a, b].concat()).into_owned()
    }

    /// Compile in a fresh fork of the pristine zygote.
    ///
    /// Each level in a fork of its own: a level compiled after another one in the same
    /// process is not pristine (on 3.12, level 0's compile interns strings for good, and
    /// level 1's frozenset constants are then rebuilt: other bytes than that level alone).
    /// The levels share one time limit, counted from the first fork.
    pub fn compile_fresh(&mut self, job: &Job<'_>) -> Result<Outcome, WorkerFailure> {
        let deadline = self.deadline();
        if job.levels.len() <= 1 {
            return self.compile_fresh_one(job, deadline);
        }
        let (mut warnings, mut bodies) = (Vec::new(), Vec::new());
        for (i, level) in job.levels.iter().enumerate() {
            let one = Job { levels: std::slice::from_ref(level), ..*job };
            match self.compile_fresh_one(&one, deadline)? {
                Outcome::Failed(f) => return Ok(Outcome::Failed(f)),
                Outcome::Compiled { warnings: w, bodies: b } => {
                    let index = u8::try_from(i).unwrap_or(u8::MAX);
                    warnings.extend(w.into_iter().map(|w| Warning { level: index, ..w }));
                    bodies.extend(b);
                }
            }
        }
        Ok(Outcome::Compiled { warnings, bodies })
    }

    fn compile_fresh_one(
        &mut self,
        job: &Job<'_>,
        deadline: Option<Instant>,
    ) -> Result<Outcome, WorkerFailure> {
        self.end_child()?;
        STATS.fresh_forks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.send(&Request::CompileFresh(job), deadline)?;
        // The child replies on stdout, then the zygote notes its end on fd 3.
        let note = self.next_control(deadline)?;
        self.data.fill();
        match (self.data.frame().transpose()?, note) {
            (Some(reply), _) => reply_outcome(reply),
            (None, Message::ChildDied(status)) => Err(self.died(status)),
            (None, _) => {
                Err(WorkerFailure::Protocol("the worker ended without a complete reply (short frame)".into()))
            }
        }
    }

    /// Compile in the long-lived child, forking one first if none is running.
    pub fn compile_long(&mut self, job: &Job<'_>) -> Result<(Outcome, LongLivedInfo), WorkerFailure> {
        self.drain()?;
        let deadline = self.deadline();
        let first = self.send_compiles(std::slice::from_ref(job), deadline)? == 0;
        self.recv_long(job.certify, first, deadline)
    }

    /// Send `jobs` to the long-lived child ahead of their turn, in one write, tagged with
    /// `tags`: the next [`Worker::compile_long_tagged`] calls with those tags, in that
    /// order, take their replies.
    pub fn send_group(&mut self, jobs: &[Job<'_>], tags: &[usize]) -> Result<(), WorkerFailure> {
        self.drain()?;
        let deadline = self.deadline();
        let before = self.send_compiles(jobs, deadline)?;
        for (i, &tag) in tags.iter().enumerate() {
            self.inflight.push_back((tag, before == 0 && i == 0, deadline));
        }
        STATS.grouped.fetch_add(jobs.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Whether a request tagged `tag` is waiting for its reply.
    pub fn is_ahead(&self, tag: usize) -> bool {
        self.inflight.iter().any(|&(t, _, _)| t == tag)
    }

    /// [`Worker::compile_long`], or the reply to the request sent ahead with `tag` when it is
    /// the oldest one waiting.
    pub fn compile_long_tagged(
        &mut self,
        job: &Job<'_>,
        tag: usize,
    ) -> Result<(Outcome, LongLivedInfo), WorkerFailure> {
        if let Some(&(t, first, deadline)) = self.inflight.front()
            && t == tag
            && self.child_running
        {
            self.inflight.pop_front();
            // The replies come back together: the group shares one limit, counted from
            // its write (see `schedule::Slot::compile_for` for what a timeout leads to).
            return self.recv_long(job.certify, first, deadline);
        }
        self.compile_long(job)
    }

    /// Take and drop the replies to requests sent ahead (their child is about to end, or
    /// something else must be compiled first): those files are compiled again.
    fn drain(&mut self) -> Result<(), WorkerFailure> {
        while let Some((_, first, _)) = self.inflight.pop_front() {
            STATS.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let deadline = self.deadline();
            if let Err(e) = self.recv_long(false, first, deadline) {
                self.inflight.clear();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Send compile requests for `jobs` to the long-lived child in one write, forking one
    /// first if none is running; how many compiles the child had been sent before them.
    fn send_compiles(&mut self, jobs: &[Job<'_>], deadline: Option<Instant>) -> Result<u32, WorkerFailure> {
        self.start_child(deadline)?;
        let heads: Vec<Vec<u8>> = jobs.iter().map(|j| Request::Compile(j).parts().0).collect();
        let slices: Vec<&[u8]> = heads.iter().zip(jobs).flat_map(|(h, j)| [h.as_slice(), j.source]).collect();
        self.write_all(&slices, deadline)?;
        let before = self.child_compiles;
        self.child_compiles += jobs.len() as u32;
        STATS.long_compiles.fetch_add(jobs.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(before)
    }

    /// Fork a long-lived child, unless one is running.
    fn start_child(&mut self, deadline: Option<Instant>) -> Result<(), WorkerFailure> {
        if !self.child_running {
            let words = std::mem::take(&mut self.birth_words);
            let sent = self.send(&Request::StartChild(&words), deadline);
            self.birth_words = words;
            sent?;
            self.child_running = true;
            self.child_compiles = 0;
            self.generation += 1;
            STATS.long_children.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// The long-lived child's reply to the oldest request not yet answered.
    fn recv_long(
        &mut self,
        certify: bool,
        first_in_child: bool,
        deadline: Option<Instant>,
    ) -> Result<(Outcome, LongLivedInfo), WorkerFailure> {
        let reply = loop {
            if let Some(reply) = self.data.frame() {
                match reply? {
                    Message::Birth(words) => {
                        self.birth = Some(words);
                        continue;
                    }
                    reply => break reply,
                }
            }
            if let Some(note) = self.control.frame() {
                // The child is gone; a reply it finished before dying still counts.
                self.child_running = false;
                if !self.inflight.is_empty() {
                    // Requests sent ahead are still in the pipe, maybe half read: the
                    // zygote must never see them (`kill` forgets them too).
                    self.kill();
                }
                self.data.fill();
                match (self.data.frame(), note?) {
                    (Some(reply), _) => break reply?,
                    (None, Message::ChildDied(status)) => return Err(self.died(status)),
                    (None, Message::ForkFailed(errno)) => return Err(fork_failure(errno)),
                    (None, _) => {
                        return Err(WorkerFailure::Protocol(
                            "the worker ended without a complete reply (short frame)".into(),
                        ));
                    }
                }
            }
            self.pump(deadline)?;
        };
        let modules_changed = matches!(reply, Message::Compiled { modules_changed: true, .. });
        let certified = certify && matches!(reply, Message::Compiled { certified: true, .. });
        Ok((reply_outcome(reply)?, LongLivedInfo { first_in_child, modules_changed, certified }))
    }

    /// Which long-lived child is running (a count of those forked), if one is.
    pub fn child(&self) -> Option<u64> {
        self.child_running.then_some(self.generation)
    }

    /// The strings every long-lived child forked from now on probes before its first
    /// compile, NUL-separated (see `worker.py`, `_birth`).
    pub fn set_birth_words(&mut self, words: Vec<u8>) {
        self.birth_words = words;
    }

    /// What the last child started with birth words found interned of them, once.
    pub fn take_birth(&mut self) -> Option<Vec<u8>> {
        self.birth.take()
    }

    /// End the long-lived child, if one runs: the next long-lived compile forks a new one.
    pub fn end_child(&mut self) -> Result<(), WorkerFailure> {
        if !self.child_running {
            return Ok(());
        }
        self.drain()?;
        let deadline = self.deadline();
        self.send(&Request::EndChild, deadline)?;
        self.child_running = false;
        self.next_control(deadline)?;
        self.data.fill();
        if self.data.buf.is_empty() {
            Ok(())
        } else {
            Err(WorkerFailure::Protocol(format!("{} unexpected bytes from the worker", self.data.buf.len())))
        }
    }

    /// Kill the zygote and everything it forked.
    pub fn kill(&mut self) {
        self.inflight.clear();
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on our own child's process group; no memory is touched.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        interrupt::unregister(self.child.id());
        // Its forks, adopted where hashpyc is process 1, are not left zombies.
        interrupt::reap_group(self.child.id());
    }

    fn deadline(&self) -> Option<Instant> {
        self.timeout.map(|t| Instant::now() + t)
    }

    fn died(&mut self, status: i32) -> WorkerFailure {
        let how = if libc::WIFSIGNALED(status) {
            killed_by(libc::WTERMSIG(status))
        } else {
            format!("exit status {}", libc::WEXITSTATUS(status))
        };
        std::thread::sleep(Duration::from_millis(10));
        WorkerFailure::Died(format!("{how}{}", tail(&self.stderr_text())))
    }

    fn eof(&mut self) -> WorkerFailure {
        if interrupt::requested() {
            return WorkerFailure::Interrupted;
        }
        let status = match self.child.try_wait() {
            Ok(Some(s)) => match s.signal() {
                Some(sig) => killed_by(sig),
                None => format!("exited with status {}", s.code().unwrap_or(-1)),
            },
            _ => "closed its output".to_string(),
        };
        std::thread::sleep(Duration::from_millis(10));
        WorkerFailure::Died(format!("{status}{}", tail(&self.stderr_text())))
    }

    fn send(&mut self, req: &Request<'_>, deadline: Option<Instant>) -> Result<(), WorkerFailure> {
        let (head, tail) = req.parts();
        self.write_all(&[&head, tail], deadline)
    }

    /// Write slices to the worker's stdin, in order, waiting for room until the deadline.
    fn write_all(&mut self, parts: &[&[u8]], deadline: Option<Instant>) -> Result<(), WorkerFailure> {
        let fd = self.stdin.as_raw_fd();
        let mut slices: Vec<std::io::IoSlice<'_>> = parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
        let mut rest: &mut [std::io::IoSlice<'_>] = &mut slices;
        std::io::IoSlice::advance_slices(&mut rest, 0);
        while !rest.is_empty() {
            match self.stdin.write_vectored(rest) {
                Ok(0) => return Err(self.eof()),
                Ok(n) => std::io::IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // Replies to earlier requests may be what keeps the worker from reading:
                    // take them in meanwhile.
                    if self.data.eof {
                        wait_fds(&[(fd, libc::POLLOUT)], deadline)?;
                    } else {
                        wait_fds(
                            &[(fd, libc::POLLOUT), (self.data.file.as_raw_fd(), libc::POLLIN)],
                            deadline,
                        )?;
                        self.data.fill();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(self.eof()),
            }
        }
        Ok(())
    }

    /// Wait for either channel to have something, and read it.
    fn pump(&mut self, deadline: Option<Instant>) -> Result<(), WorkerFailure> {
        if self.data.eof && self.control.eof {
            return Err(self.eof());
        }
        let mut fds = Vec::with_capacity(2);
        if !self.data.eof {
            fds.push((self.data.file.as_raw_fd(), libc::POLLIN));
        }
        if !self.control.eof {
            fds.push((self.control.file.as_raw_fd(), libc::POLLIN));
        }
        wait_fds(&fds, deadline)?;
        self.data.fill();
        self.control.fill();
        Ok(())
    }

    /// The zygote's next note about a child.
    fn next_control(&mut self, deadline: Option<Instant>) -> Result<Message, WorkerFailure> {
        loop {
            if let Some(m) = self.control.frame() {
                return match m? {
                    note @ (Message::ChildEnded | Message::ChildDied(_)) => Ok(note),
                    Message::ForkFailed(errno) => Err(fork_failure(errno)),
                    other => {
                        Err(WorkerFailure::Protocol(format!("unexpected {other:?} on the control channel")))
                    }
                };
            }
            if self.control.eof {
                return Err(self.eof());
            }
            self.pump(deadline)?;
        }
    }
}

fn reply_outcome(reply: Message) -> Result<Outcome, WorkerFailure> {
    match reply {
        Message::Compiled { warnings, bodies, .. } => Ok(Outcome::Compiled { warnings, bodies }),
        Message::Failed(f) => Ok(Outcome::Failed(f)),
        other => Err(WorkerFailure::Protocol(format!("unexpected {other:?}"))),
    }
}

/// How a hello frame begins: its length, below 64 KiB (the two bytes shown as 0 are its high
/// bytes; the first two, any), and its kind (see `frame::decode`).
const HELLO_HEAD: [u8; 5] = [0, 0, 0, 0, b'H'];

/// Whether `buf` can begin a hello frame, as far as it goes.
fn may_begin_hello(buf: &[u8]) -> bool {
    buf.iter().zip(HELLO_HEAD).enumerate().all(|(i, (&b, want))| i < 2 || b == want)
}

/// How a worker's hello contradicts the probe of `target`, if it does: any part of the
/// interpreter's identity the bytecode cache's key takes from the probe (the magic number,
/// `sys.version` with its build, hexversion, cache tag, ABI flags, marshal version), so that
/// another build behind an unchanged launcher is never served or stored under the probed
/// one's key. (Free-threading is in the ABI flags; py_compile's flag on the top-level code
/// object is the build's, which `sys.version` names.)
fn changed(target: &Target, hello: &Message) -> Option<WorkerFailure> {
    let Message::Hello {
        hexversion,
        magic,
        sys_version,
        cache_tag,
        abiflags,
        marshal_version,
        no_debug_ranges,
        int_max_str_digits,
        optimize,
        pycache_prefix,
    } = hello
    else {
        return None;
    };
    let quoted = |s: &str| format!("`{s}`");
    let set = &target.settings;
    let ranges = |off: bool| if off { "off" } else { "on" }.to_string();
    let digits = |n: Option<i64>| n.map_or_else(|| "the default".to_string(), |n| n.to_string());
    let found_digits = (*int_max_str_digits >= 0).then_some(i64::from(*int_max_str_digits));
    // As the probe's answer is read: a level past 255 is 0.
    let found_optimize = u8::try_from(*optimize).unwrap_or(0);
    use std::os::unix::ffi::OsStrExt;
    let prefix = |p: Option<&[u8]>| {
        p.map_or_else(
            || "none".to_string(),
            |p| crate::report::ticked(std::path::Path::new(std::ffi::OsStr::from_bytes(p))).to_string(),
        )
    };
    let found_prefix = (!pycache_prefix.is_empty()).then_some(pycache_prefix.as_slice());
    let expected_prefix = set.pycache_prefix.as_deref().map(|p| p.as_os_str().as_bytes());
    let (what, found, expected) = if *magic != target.magic.0 {
        ("magic", crate::pyc::hex(magic), target.magic.to_string())
    } else if *sys_version != target.sys_version {
        ("sys.version", quoted(sys_version), quoted(&target.sys_version))
    } else if *hexversion != target.hexversion {
        ("sys.hexversion", format!("{hexversion:#x}"), format!("{:#x}", target.hexversion))
    } else if *cache_tag != target.cache_tag {
        ("cache tag", quoted(cache_tag), quoted(&target.cache_tag))
    } else if *abiflags != target.abiflags {
        ("sys.abiflags", quoted(abiflags), quoted(&target.abiflags))
    } else if *marshal_version != target.marshal_version {
        ("marshal version", marshal_version.to_string(), target.marshal_version.to_string())
    } else if *no_debug_ranges != set.no_debug_ranges {
        ("column positions", ranges(*no_debug_ranges), ranges(set.no_debug_ranges))
    } else if found_digits != set.int_max_str_digits {
        ("int_max_str_digits", digits(found_digits), digits(set.int_max_str_digits))
    } else if found_optimize != set.optimize {
        ("sys.flags.optimize", found_optimize.to_string(), set.optimize.to_string())
    } else if found_prefix != expected_prefix {
        ("sys.pycache_prefix", prefix(found_prefix), prefix(expected_prefix))
    } else {
        return None;
    };
    Some(WorkerFailure::Changed { what, found, expected })
}

/// The first line of what a worker (or a launcher, before the probe) printed where a frame
/// (the probe's answer) was expected, for a message.
pub(crate) fn printed(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
    let mut out = String::new();
    for c in text.trim_end().chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a pipe descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Wait until one of `fds` is ready, the deadline passes, or an interrupt arrives.
fn wait_fds(fds: &[(i32, i16)], deadline: Option<Instant>) -> Result<(), WorkerFailure> {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|&(fd, events)| libc::pollfd { fd, events, revents: 0 }).collect();
    loop {
        if interrupt::requested() {
            return Err(WorkerFailure::Interrupted);
        }
        // Wake up now and then to notice interrupts even if the worker is silent.
        let slice = Duration::from_millis(200);
        let wait = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(WorkerFailure::TimedOut(Duration::ZERO));
                }
                (d - now).min(slice)
            }
            None => slice,
        };
        // SAFETY: valid pollfds for the duration of the call.
        let r = unsafe {
            libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, wait.as_millis().max(1) as i32)
        };
        if r > 0 {
            return Ok(());
        }
    }
}

/// A human-readable description of the interpreter used for messages.
pub fn describe(target: &Target) -> String {
    format!("CPython {} ({})", target.version_string(), crate::report::ticked(&target.executable))
}
