//! What the two HTTP servers (the control socket and the telemetry port) share, below both: the
//! small HTTP/1.1 server with its limits (`http`), the requests they send the daemon and asking
//! it with a timeout (`daemon`), and the daemon's status report (`report`).
//!
//! It must not know either server's endpoints or JSON shapes, nor act on a request itself: the
//! daemon answers them.

mod daemon;
pub mod http;
pub mod report;

pub use daemon::{DAEMON_QUEUE, DaemonRequest, SignalAnswer, ask, ask_status, daemon_channel};
pub use http::Limits;
pub use report::{
    ConsulReport, ExitReport, HealthReport, InstanceReport, JobReport, JobState, ServiceReport,
    StatusReport, WatchReport,
};
