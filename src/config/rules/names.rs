//! The rules about names: jobs are told apart by their names, only one job is the application,
//! and what is registered in Consul has a name Consul takes.

use crate::config::TELEMETRY_JOB;
use crate::config::problems::{Problems, quote_short};
use crate::config::raw::{RawJob, RawTelemetry};

/// Job names should be unique, and none the name of the job telemetry adds: events name their
/// source job by its name. ContainerPilot runs two jobs of one name, and so does pilot, with a
/// warning: both publish their events under that name, and both register (and heartbeat) the
/// one Consul service of that name, whose ID `<name>-<hostname>` they share
/// (docs/configuration.md, "Two jobs with one name").
pub fn check_job_names(jobs: &[RawJob], telemetry: Option<&RawTelemetry>, problems: &mut Problems) {
    let mut first: Vec<&RawJob> = Vec::new();
    for job in jobs.iter().filter(|j| !j.name.is_empty()) {
        match first.iter().find(|f| f.name == job.name) {
            Some(earlier) => problems.at(job.path.clone()).warn_key(
                "name",
                format!(
                    "{:?} is already the name of jobs[{}] (line {}): both jobs run, and their \
                     events and Consul service are one",
                    job.name, earlier.index, earlier.line
                ),
                job.line,
            ),
            None => first.push(job),
        }
    }
    let Some(telemetry) = telemetry else {
        return;
    };
    if let Some(job) = first.iter().find(|j| j.name == TELEMETRY_JOB) {
        problems
            .at(format!("jobs[{}] {TELEMETRY_JOB:?}", job.index))
            .warn_key(
                "name",
                format!(
                    "{TELEMETRY_JOB:?} is the name of the job telemetry adds (line {}): both jobs \
                 run, and their events and Consul service are one",
                    telemetry.line
                ),
                job.line,
            );
    }
}

/// Only one job is the application (`main: true`): its exit is pilot's.
pub fn check_main(jobs: &[RawJob], problems: &mut Problems) {
    let mut mains = jobs.iter().filter(|j| j.is_main());
    let Some(first) = mains.next() else {
        return;
    };
    for job in mains {
        problems.at(job.path.clone()).key(
            "main",
            format!(
                "is already set on {} (line {}): only one job is the application",
                first.path,
                first.line_of(&first.main)
            ),
            job.line_of(&job.main),
        );
    }
}

/// ContainerPilot's rule for names registered in Consul: `^[a-z][a-zA-Z0-9\-]+$`.
pub fn service_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not a valid service name: it must start with a lowercase letter and have only \
             letters, digits and dashes, at least 2 characters",
            quote_short(name)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::json5::parse;
    use crate::config::raw;

    fn jobs(text: &str) -> (Vec<RawJob>, Option<RawTelemetry>) {
        let mut problems = Problems::default();
        let config = raw::decode(&parse(text).unwrap(), &mut problems).unwrap();
        assert_eq!(problems.messages(), Vec::<String>::new());
        (config.jobs, config.telemetry)
    }

    #[test]
    fn a_repeated_name_is_reported_once_per_repeat_against_the_first() {
        let (jobs, _) =
            jobs("{consul: 'c', jobs: [\n{name: 'a'},\n{name: 'a'},\n{name: 'a'}, {name: 'b'}]}");
        let mut problems = Problems::default();
        check_job_names(&jobs, None, &mut problems);
        assert_eq!(
            problems.messages(),
            [
                "warning: jobs[1] \"a\": name \"a\" is already the name of jobs[0] (line 2): both jobs run, and their events and Consul service are one (line 3)",
                "warning: jobs[2] \"a\": name \"a\" is already the name of jobs[0] (line 2): both jobs run, and their events and Consul service are one (line 4)",
            ]
        );
    }

    #[test]
    fn the_telemetry_job_takes_its_name_only_with_telemetry() {
        let (jobs, telemetry) =
            jobs("{consul: 'c', telemetry: {},\njobs: [{name: 'containerpilot'}]}");
        let mut problems = Problems::default();
        check_job_names(&jobs, None, &mut problems);
        assert!(problems.messages().is_empty());
        check_job_names(&jobs, telemetry.as_ref(), &mut problems);
        assert_eq!(
            problems.messages(),
            [
                "warning: jobs[0] \"containerpilot\": name \"containerpilot\" is the name of the job telemetry adds (line 1): both jobs run, and their events and Consul service are one (line 2)"
            ]
        );
    }

    #[test]
    fn one_main_job() {
        let (jobs, _) = jobs(
            "{consul: 'c', jobs: [{name: 'a', main: true},\n{name: 'b', main: false},\n{name: 'c', main: 1}]}",
        );
        let mut problems = Problems::default();
        check_main(&jobs, &mut problems);
        assert_eq!(
            problems.messages(),
            [
                "jobs[2] \"c\": main is already set on jobs[0] \"a\" (line 1): only one job is the application (line 3)"
            ]
        );
    }

    #[test]
    fn service_names() {
        for good in ["ab", "my-service", "myService2"] {
            assert_eq!(service_name(good), Ok(()), "{good}");
        }
        for bad in ["a", "App", "-app", "my_app", "my.app", ""] {
            assert!(service_name(bad).is_err(), "{bad}");
        }
    }
}
