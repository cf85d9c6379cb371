//! Integration tests: the real daemon (config → pollers → store → HTTP) against the in-repo
//! Live API simulator, over loopback sockets or in process under paused time; plus the shipped
//! deploy files under promtool.

// Named to sort first: libtest starts a binary's tests in name order, four at a time here, and
// this one waits longest (about 20 s of real Prometheus and Alertmanager); named `stack_e2e`, it
// started 21 s into a 41 s run of this binary.
mod alerting_e2e;
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
mod status_page;
mod support;
mod tidy;
mod web;
