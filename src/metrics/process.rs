//! The standard `process_*` metrics of pilot's own process, read from `/proc/self` at each
//! scrape, with the names and meanings of client_golang's process collector (which
//! ContainerPilot exposed).

use std::path::Path;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::Num;

/// One reading of the process's figures. A figure that cannot be read is `None` and is left out
/// of `/metrics`, as client_golang does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub virtual_bytes: Option<f64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
}

impl ProcessStats {
    /// Reads `/proc/self`.
    pub fn read() -> ProcessStats {
        let proc = Path::new("/proc");
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let stat = std::fs::read_to_string(proc.join("self/stat")).ok();
        let boot = std::fs::read_to_string(proc.join("stat"))
            .ok()
            .and_then(|s| boot_time(&s));
        let mut stats = stat
            .and_then(|s| parse_stat(&s, ticks as f64, page as f64, boot))
            .unwrap_or_default();
        stats.open_fds = std::fs::read_dir(proc.join("self/fd"))
            .ok()
            // The directory handle itself is one of the entries while it is being read.
            .map(|dir| dir.count().saturating_sub(1) as f64);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            stats.max_fds = Some(limit.rlim_cur as f64);
        }
        stats
    }
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses, so the fields are counted from the last `)`.
fn parse_stat(text: &str, ticks: f64, page: f64, boot: Option<f64>) -> Option<ProcessStats> {
    if ticks <= 0.0 || page <= 0.0 {
        return None;
    }
    let rest = &text[text.rfind(')')? + 1..];
    // rest[0] is field 3 (state).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse::<f64>().ok() };
    let utime = field(14)?;
    let stime = field(15)?;
    let start_ticks = field(22)?;
    Some(ProcessStats {
        cpu_seconds: Some((utime + stime) / ticks),
        virtual_bytes: field(23),
        resident_bytes: field(24).map(|pages| pages * page),
        start_time_seconds: boot.map(|b| b + start_ticks / ticks),
        open_fds: None,
        max_fds: None,
    })
}

/// The `btime` line of `/proc/stat`: when the system booted, in seconds since the epoch.
fn boot_time(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The collector registered in the registry; it reads `/proc` at every scrape.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = ProcessStats::read();
        let families: [(&str, &str, MetricType, Option<f64>); 6] = [
            (
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                MetricType::Counter,
                stats.cpu_seconds,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                MetricType::Gauge,
                stats.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                MetricType::Gauge,
                stats.max_fds,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                MetricType::Gauge,
                stats.virtual_bytes,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                MetricType::Gauge,
                stats.resident_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                MetricType::Gauge,
                stats.start_time_seconds,
            ),
        ];
        for (name, help, kind, value) in families {
            if let Some(value) = value {
                // A counter's sample is written without the `_total` suffix that
                // prometheus-client's own counters add: the name already has it, as in the
                // Prometheus text format (see `metrics`).
                encoder
                    .encode_descriptor(name, help, None, kind)?
                    .encode_gauge(&Num(value))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_hostile_command_name() {
        // Fields 3.. of a real line; the name holds spaces and a parenthesis.
        let line = "42 (a b) c) S 1 42 42 0 -1 4194560 300 0 0 0 150 50 0 0 20 0 1 0 1000 \
                    8388608 256 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let stats = parse_stat(line, 100.0, 4096.0, Some(1_700_000_000.0)).unwrap();
        assert_eq!(stats.cpu_seconds, Some(2.0));
        assert_eq!(stats.virtual_bytes, Some(8_388_608.0));
        assert_eq!(stats.resident_bytes, Some(256.0 * 4096.0));
        assert_eq!(stats.start_time_seconds, Some(1_700_000_010.0));
    }

    #[test]
    fn reads_this_process() {
        let stats = ProcessStats::read();
        assert!(stats.resident_bytes.unwrap() > 0.0);
        assert!(stats.virtual_bytes.unwrap() >= stats.resident_bytes.unwrap());
        let fds = stats.open_fds.unwrap();
        assert!(fds >= 3.0, "{fds}");
        assert!(stats.max_fds.unwrap() >= fds);
        let start = stats.start_time_seconds.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
    }

    #[test]
    fn boot_time_line() {
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1.7e9)
        );
        assert_eq!(boot_time("cpu 1\n"), None);
    }
}
