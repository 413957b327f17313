//! Integration tests: the real `hashpyc` binary against real CPython interpreters.

mod harness;

mod cache;
mod check;
mod compile;
mod config;
mod determinism;
mod faults;
mod first_hour;
mod options;
pub mod precommit;
mod relocate;
mod remote;
pub mod servers;
mod shipping;
