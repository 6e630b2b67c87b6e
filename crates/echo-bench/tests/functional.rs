//! The functional tests of echo-bench, in one test binary that links once:
//! scenarios driven through the library against in-test servers, and the
//! command run as a process.

mod functional {
    pub mod cli;
    pub mod corrupt;
    pub mod distributed;
    pub mod fail_fast;
    pub mod first_hour;
    pub mod rate;
    pub mod scenarios;
    pub mod server_cost;
    pub mod targets;
    pub mod tls;
    pub mod util;
}
