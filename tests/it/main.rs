//! Integration tests: the real daemon (config → pollers → store → HTTP) against the in-repo
//! Live API simulator, over loopback sockets or in process under paused time; plus the shipped
//! deploy files under promtool.

mod credentials;
mod deploy;
mod docs;
mod exporter;
mod faults;
mod operator;
mod poll;
mod reload;
mod restarts;
mod scaling;
mod soak;
mod stack_e2e;
mod status_page;
mod support;
mod tidy;
mod web;
