//! The environment children get: pilot's own, plus what pilot adds (`CONTAINERPILOT_PID`, the
//! `_IP` of each service, the `_PID` of each running job) and what `-putenv` changed.
//!
//! pilot never changes its own process environment (`setenv` is unsafe once threads exist); every
//! child gets a fresh copy of this map, and config templates render against it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A shared, cloneable environment.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    vars: Arc<Mutex<BTreeMap<OsString, OsString>>>,
}

impl Environment {
    /// pilot's own environment, plus `CONTAINERPILOT_PID` and `PILOT_PID`.
    pub fn from_process() -> Environment {
        let env = Environment {
            vars: Arc::new(Mutex::new(std::env::vars_os().collect())),
        };
        let pid = std::process::id().to_string();
        env.set_both("PID", &pid);
        env
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<OsString, OsString>> {
        self.vars.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set(&self, key: impl Into<OsString>, value: impl Into<OsString>) {
        self.lock().insert(key.into(), value.into());
    }

    pub fn remove(&self, key: impl Into<OsString>) {
        self.lock().remove(&key.into());
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.lock()
            .get(std::ffi::OsStr::new(key))
            .map(|v| v.to_string_lossy().into_owned())
    }

    /// Sets `CONTAINERPILOT_<suffix>` and its `PILOT_<suffix>` twin.
    pub fn set_both(&self, suffix: &str, value: &str) {
        self.set(format!("CONTAINERPILOT_{suffix}"), value);
        self.set(format!("PILOT_{suffix}"), value);
    }

    /// Removes `CONTAINERPILOT_<suffix>` and `PILOT_<suffix>`.
    pub fn remove_both(&self, suffix: &str) {
        self.remove(format!("CONTAINERPILOT_{suffix}"));
        self.remove(format!("PILOT_{suffix}"));
    }

    /// A copy for one child.
    pub fn snapshot(&self) -> Vec<(OsString, OsString)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The variables as text, for config templates. Values that are not UTF-8 are converted
    /// lossily; a value containing `=` is kept whole (ContainerPilot truncated it).
    pub fn to_strings(&self) -> BTreeMap<String, String> {
        self.lock()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }
}

/// `<NAME>_PID`, the variable (after `CONTAINERPILOT_` or `PILOT_`: see
/// [`Environment::set_both`]) that holds the pid of the running exec of the job or check `name`.
pub fn pid_var(name: &str) -> String {
    format!("{}_PID", pid_var_name(name))
}

/// The name ContainerPilot derives from a job name for `CONTAINERPILOT_<NAME>_PID`: the base
/// name without its last extension, runs of other characters than letters and digits replaced by
/// `_`, upper case (`test-Case--now.sh` gives `TEST_CASE_NOW`).
fn pid_var_name(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    let base = match base.rfind('.') {
        Some(dot) => base.replacen(&base[dot..], "", 1),
        None => base.to_string(),
    };
    let mut out = String::new();
    for c in base.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out
}

/// The name ContainerPilot uses in `CONTAINERPILOT_<NAME>_IP`: upper case, `-` replaced by `_`.
pub fn ip_var_name(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_var_names_follow_containerpilot() {
        for (name, want) in [
            ("test-Case--now.sh", "TEST_CASE_NOW"),
            ("testpid", "TESTPID"),
            ("check.app", "CHECK"),
            ("my.job", "MY"),
            ("/usr/bin/run-it.py", "RUN_IT"),
        ] {
            assert_eq!(pid_var_name(name), want, "{name}");
        }
        assert_eq!(pid_var("check.app"), "CHECK_PID");
    }

    #[test]
    fn ip_var_names_follow_containerpilot() {
        assert_eq!(ip_var_name("my-service"), "MY_SERVICE");
        assert_eq!(ip_var_name("containerpilot"), "CONTAINERPILOT");
    }

    #[test]
    fn values_with_equals_signs_stay_whole() {
        let env = Environment::default();
        env.set("A", "B=C");
        assert_eq!(env.to_strings().get("A").map(String::as_str), Some("B=C"));
    }

    #[test]
    fn both_prefixes_are_set_and_removed_together() {
        let env = Environment::default();
        env.set_both("APP_IP", "10.0.0.1");
        assert_eq!(
            env.get("CONTAINERPILOT_APP_IP").as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(env.get("PILOT_APP_IP").as_deref(), Some("10.0.0.1"));
        env.remove_both("APP_IP");
        assert!(env.snapshot().is_empty());
    }
}
