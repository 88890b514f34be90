//! What every child of pilot gets, and one run of an exec: the children's `Environment` (with
//! the `_PID` and `_IP` variables pilot adds), and starting a process group with its output
//! logged line by line, stopping it, and SIGTERMing what is left of it after its leader exited.
//!
//! Jobs run their execs and health checks run their commands through this module, so the two
//! start, log and stop processes the same way. It sits above the supervisor (which forks and
//! reaps) and below health and jobs. It must not decide when a process runs or what its exit
//! means: that is the job's or the checker's.

mod environment;
mod run;

pub use environment::{Environment, ip_var_name, pid_var};
pub use run::{Launch, Run, start, stop, terminate_leftovers};
