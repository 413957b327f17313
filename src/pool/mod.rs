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
pub mod schedule;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;

pub use frame::{CompileFailure, Warning};
use frame::{FrameError, Job, Message, Request};

use crate::interrupt;
use crate::target::Target;

/// The worker script, shipped inside the binary.
pub const WORKER_SCRIPT: &str = include_str!("worker.py");
/// How long a worker may take to start and say hello, at least.
const MIN_STARTUP: Duration = Duration::from_secs(30);
const STDERR_TAIL: usize = 4096;

/// Why a worker could not deliver a result. The worker is unusable afterwards.
#[derive(Debug, Error, Clone)]
pub enum WorkerFailure {
    #[error("the Python worker failed to start{}", tail(.0))]
    Start(String),
    #[error("the Python worker did not start within {} s (interpreter too slow, or hung)", .0.as_secs())]
    StartTimeout(Duration),
    #[error("the Python worker died: {0}")]
    Died(String),
    #[error("timed out after {} s in the Python worker", .0.as_secs_f64())]
    TimedOut(Duration),
    #[error("the Python worker broke the protocol: {0}")]
    Protocol(String),
    #[error(
        "the Python worker reports magic {found}, but the probe said {expected}: the interpreter changed"
    )]
    Changed { found: String, expected: String },
    #[error("interrupted")]
    Interrupted,
}

fn tail(s: &str) -> String {
    if s.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", s.trim())
    }
}

/// A compile's result as the worker reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Compiled {
        warnings: Vec<Warning>,
        bodies: Vec<Vec<u8>>,
    },
    Failed(CompileFailure),
}

/// What a long-lived compile adds: whether the child was pristine before it, and whether
/// the compile imported a module (which changes the child for good).
#[derive(Debug, Clone, Copy)]
pub struct LongLivedInfo {
    pub first_in_child: bool,
    pub modules_changed: bool,
}

/// How to start workers for one target.
#[derive(Clone)]
pub struct WorkerSpec {
    pub target: Arc<Target>,
    pub script: Arc<str>,
    pub timeout: Option<Duration>,
}

impl WorkerSpec {
    pub fn new(target: Arc<Target>, timeout: Option<Duration>) -> Self {
        // A stand-in worker for fault-injection tests (crashing, hanging, flooding ones).
        let script = std::env::var_os("HASHPYC_WORKER_SCRIPT")
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_else(|| WORKER_SCRIPT.to_string());
        WorkerSpec {
            target,
            script: script.into(),
            timeout,
        }
    }
}

/// One zygote process and, at times, its long-lived child.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    timeout: Option<Duration>,
    child_running: bool,
    child_compiles: u32,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Worker {
    /// Start a zygote and wait for its hello.
    pub fn spawn(spec: &WorkerSpec) -> Result<Worker, WorkerFailure> {
        if interrupt::requested() {
            return Err(WorkerFailure::Interrupted);
        }
        let target = &spec.target;
        let mut cmd = crate::target::python_command(&target.executable);
        cmd.args(["-S", "-s", "-B"]);
        if target.minor() >= (3, 11) {
            cmd.arg("-P");
        }
        cmd.arg("-c")
            .arg(&*spec.script)
            .arg(if target.flag_ref_top { "1" } else { "0" })
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| WorkerFailure::Start(e.to_string()))?;
        interrupt::register(child.id());
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let sink = Arc::clone(&stderr);
        std::thread::Builder::new()
            .name("hashpyc-stderr".into())
            .spawn(move || {
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
            })
            .map_err(|e| WorkerFailure::Start(e.to_string()))?;
        set_nonblocking(stdin.as_raw_fd());
        set_nonblocking(stdout.as_raw_fd());
        let mut w = Worker {
            child,
            stdin,
            stdout,
            stderr,
            timeout: spec.timeout,
            child_running: false,
            child_compiles: 0,
        };
        let startup = spec.timeout.map_or(MIN_STARTUP, |t| t.max(MIN_STARTUP));
        let deadline = Instant::now() + startup;
        match w.read_message(Some(deadline)) {
            Ok(Message::Hello { magic, .. }) if magic == target.magic.0 => Ok(w),
            Ok(Message::Hello { magic, .. }) => Err(WorkerFailure::Changed {
                found: crate::pyc::hex(&magic),
                expected: target.magic.to_string(),
            }),
            Ok(other) => Err(WorkerFailure::Protocol(format!(
                "expected a hello, got {other:?}"
            ))),
            Err(WorkerFailure::TimedOut(_)) => Err(WorkerFailure::StartTimeout(startup)),
            Err(WorkerFailure::Died(_) | WorkerFailure::Protocol(_)) => {
                // Give the stderr thread a moment to collect the interpreter's last words.
                let _ = w.child.wait();
                std::thread::sleep(Duration::from_millis(20));
                Err(WorkerFailure::Start(w.stderr_text()))
            }
            Err(e) => Err(e),
        }
    }

    /// The last few KiB the worker wrote to stderr.
    pub fn stderr_text(&self) -> String {
        let tail = self.stderr.lock().expect("stderr lock");
        let (a, b) = tail.as_slices();
        String::from_utf8_lossy(&[a, b].concat()).into_owned()
    }

    /// Compile in a fresh fork of the pristine zygote.
    pub fn compile_fresh(&mut self, job: &Job<'_>) -> Result<Outcome, WorkerFailure> {
        self.end_child()?;
        let deadline = self.deadline();
        self.send(&Request::CompileFresh(job), deadline)?;
        let outcome = match self.read_message(deadline)? {
            Message::Compiled {
                warnings, bodies, ..
            } => Outcome::Compiled { warnings, bodies },
            Message::Failed(f) => Outcome::Failed(f),
            Message::ChildDied(status) => return Err(self.died(status)),
            other => return Err(WorkerFailure::Protocol(format!("unexpected {other:?}"))),
        };
        match self.read_message(deadline)? {
            Message::ChildEnded | Message::ChildDied(_) => Ok(outcome),
            other => Err(WorkerFailure::Protocol(format!("unexpected {other:?}"))),
        }
    }

    /// Compile in the long-lived child, forking one first if none is running.
    pub fn compile_long(
        &mut self,
        job: &Job<'_>,
    ) -> Result<(Outcome, LongLivedInfo), WorkerFailure> {
        let deadline = self.deadline();
        if !self.child_running {
            self.send(&Request::StartChild, deadline)?;
            self.child_running = true;
            self.child_compiles = 0;
        }
        self.send(&Request::Compile(job), deadline)?;
        let first_in_child = self.child_compiles == 0;
        self.child_compiles += 1;
        match self.read_message(deadline)? {
            Message::Compiled {
                warnings,
                bodies,
                modules_changed,
            } => Ok((
                Outcome::Compiled { warnings, bodies },
                LongLivedInfo {
                    first_in_child,
                    modules_changed,
                },
            )),
            Message::Failed(f) => Ok((
                Outcome::Failed(f),
                LongLivedInfo {
                    first_in_child,
                    modules_changed: false,
                },
            )),
            Message::ChildDied(status) => {
                self.child_running = false;
                Err(self.died(status))
            }
            other => Err(WorkerFailure::Protocol(format!("unexpected {other:?}"))),
        }
    }

    /// End the long-lived child, if one runs: the next long-lived compile forks a new one.
    pub fn end_child(&mut self) -> Result<(), WorkerFailure> {
        if !self.child_running {
            return Ok(());
        }
        let deadline = self.deadline();
        self.send(&Request::EndChild, deadline)?;
        self.child_running = false;
        match self.read_message(deadline)? {
            Message::ChildEnded | Message::ChildDied(_) => Ok(()),
            other => Err(WorkerFailure::Protocol(format!("unexpected {other:?}"))),
        }
    }

    /// Kill the zygote and everything it forked.
    pub fn kill(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on our own child's process group; no memory is touched.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        interrupt::unregister(self.child.id());
    }

    fn deadline(&self) -> Option<Instant> {
        self.timeout.map(|t| Instant::now() + t)
    }

    fn died(&mut self, status: i32) -> WorkerFailure {
        let how = if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
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
                Some(sig) => format!("killed by signal {sig}"),
                None => format!("exited with status {}", s.code().unwrap_or(-1)),
            },
            _ => "closed its output".to_string(),
        };
        std::thread::sleep(Duration::from_millis(10));
        WorkerFailure::Died(format!("{status}{}", tail(&self.stderr_text())))
    }

    fn send(&mut self, req: &Request<'_>, deadline: Option<Instant>) -> Result<(), WorkerFailure> {
        let frame = req.encode();
        let fd = self.stdin.as_raw_fd();
        let mut at = 0;
        while at < frame.len() {
            match self.stdin.write(&frame[at..]) {
                Ok(0) => return Err(self.eof()),
                Ok(n) => at += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    wait_fd(fd, libc::POLLOUT, deadline)?
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(self.eof()),
            }
        }
        Ok(())
    }

    fn read_exact(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<(), WorkerFailure> {
        let fd = self.stdout.as_raw_fd();
        let mut at = 0;
        while at < buf.len() {
            match self.stdout.read(&mut buf[at..]) {
                Ok(0) => return Err(self.eof()),
                Ok(n) => at += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    wait_fd(fd, libc::POLLIN, deadline)?
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(self.eof()),
            }
        }
        Ok(())
    }

    fn read_message(&mut self, deadline: Option<Instant>) -> Result<Message, WorkerFailure> {
        let mut len = [0u8; 4];
        self.read_exact(&mut len, deadline)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > frame::MAX_FRAME {
            return Err(WorkerFailure::Protocol(
                FrameError::TooLarge(len as u64).to_string(),
            ));
        }
        let mut payload = vec![0u8; len];
        self.read_exact(&mut payload, deadline)?;
        frame::decode(&payload).map_err(|e| WorkerFailure::Protocol(e.to_string()))
    }
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a pipe descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Wait until `fd` is ready for `events`, the deadline passes, or an interrupt arrives.
fn wait_fd(fd: i32, events: i16, deadline: Option<Instant>) -> Result<(), WorkerFailure> {
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
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, wait.as_millis().max(1) as i32) };
        if r > 0 {
            return Ok(());
        }
    }
}

/// A human-readable description of the interpreter used for messages.
pub fn describe(target: &Target) -> String {
    format!(
        "CPython {} (`{}`)",
        target.version_string(),
        Path::new(&target.executable).display()
    )
}
