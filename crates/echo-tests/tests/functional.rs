//! Functional tests: the real `echo-server` and `echo-client` binaries (and,
//! for what ships beside them, `echo-bench`) as
//! processes, on loopback, in one test binary that links once.

mod functional {
    pub mod client_cli;
    pub mod client_hostile;
    pub mod client_probe;
    pub mod client_targets;
    pub mod docs;
    pub mod event_loop;
    pub mod hardening;
    pub mod hostile;
    pub mod in_process;
    pub mod lifecycle;
    pub mod listeners;
    pub mod messages;
    pub mod operations;
    pub mod shipping;
    pub mod stream_edges;
    pub mod tls;
    pub mod udp;
}
