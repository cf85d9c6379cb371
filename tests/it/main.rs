//! Integration tests: the real daemon (config → pollers → store → HTTP) against the in-repo
//! Live API simulator, over loopback sockets or in process under paused time; plus the shipped
//! deploy files under promtool.

mod deploy;
mod exporter;
mod faults;
mod reload;
mod soak;
mod support;
