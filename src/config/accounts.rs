//! Users and groups by name or number, from the container's `/etc/passwd` and `/etc/group`.
//!
//! A static binary has no NSS modules, so these two files are the whole truth, as they are for
//! Docker's `USER` and for `su` in a container.

use crate::supervisor::Identity;

/// Where users and groups are looked up.
#[derive(Clone, Debug)]
pub enum Accounts {
    /// `/etc/passwd` and `/etc/group`, read when a job names a user.
    System,
    /// The two files' text (tests).
    Text { passwd: String, group: String },
}

/// Who a job's (or a check's) processes run as, and what their environment says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub identity: Identity,
    /// The user's name, when `/etc/passwd` knows it (`USER` and `LOGNAME`).
    pub name: Option<String>,
    /// The user's home (`HOME`); `/` for a user `/etc/passwd` does not know.
    pub home: String,
}

impl RunAs {
    /// The environment `env` with `HOME`, `USER` and `LOGNAME` of this user, as `su` sets them
    /// (a user `/etc/passwd` does not know gets `HOME=/` and keeps the others).
    pub fn environment(
        &self,
        mut env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    ) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        let mut set = |key: &str, value: &str| {
            env.retain(|(k, _)| k != key);
            env.push((key.into(), value.into()));
        };
        set("HOME", &self.home);
        if let Some(name) = &self.name {
            set("USER", name);
            set("LOGNAME", name);
        }
        env
    }
}

impl Accounts {
    /// `user` (a name, or a number) and the optional `group` (a name or a number; the user's
    /// own group otherwise). The supplementary groups are those `/etc/group` lists the user in.
    /// A name that the files do not know is an error; a number need not be there, as in Docker.
    pub fn resolve(&self, user: &str, group: Option<&str>) -> Result<RunAs, String> {
        let (passwd, groups) = match self {
            Accounts::System => (read("/etc/passwd"), read("/etc/group")),
            Accounts::Text { passwd, group } => (passwd.clone(), group.clone()),
        };
        let entry = entries(&passwd, 7).find(|f| f[0] == user).or_else(|| {
            let uid = user.parse::<u32>().ok()?;
            entries(&passwd, 7).find(|f| f[2].parse() == Ok(uid))
        });
        let (uid, own_gid, name, home) = match entry {
            Some(f) => (
                f[2].parse::<u32>()
                    .map_err(|_| format!("/etc/passwd has no valid uid for user {user:?}"))?,
                f[3].parse::<u32>()
                    .map_err(|_| format!("/etc/passwd has no valid gid for user {user:?}"))?,
                Some(f[0].to_string()),
                f[5].to_string(),
            ),
            None => match user.parse::<u32>() {
                Ok(uid) => (uid, 0, None, "/".to_string()),
                Err(_) => return Err(format!("user {user:?} is not in /etc/passwd")),
            },
        };
        let gid = match group {
            None => own_gid,
            Some(group) => entries(&groups, 4)
                .find(|f| f[0] == group)
                .and_then(|f| f[2].parse::<u32>().ok())
                .or_else(|| group.parse::<u32>().ok())
                .ok_or_else(|| format!("group {group:?} is not in /etc/group"))?,
        };
        let mut supplementary: Vec<u32> = match &name {
            Some(name) => entries(&groups, 4)
                .filter(|f| f[3].split(',').any(|member| member == name))
                .filter_map(|f| f[2].parse().ok())
                .collect(),
            None => Vec::new(),
        };
        supplementary.push(gid);
        supplementary.sort_unstable();
        supplementary.dedup();
        Ok(RunAs {
            identity: Identity {
                uid,
                gid,
                groups: supplementary,
            },
            name,
            home: if home.is_empty() { "/".into() } else { home },
        })
    }
}

/// A missing file knows nobody.
fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The lines of a colon-separated file with at least `fields` fields, split; comments and
/// blank lines skipped.
fn entries(text: &str, fields: usize) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(move |f| f.len() >= fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        Accounts::Text {
            passwd: "root:x:0:0:root:/root:/bin/sh\n# a comment\napp:x:1000:1000:App:/home/app:/bin/sh\nnohome:x:1001:1001:::/bin/sh\n"
                .into(),
            group: "root:x:0:\napp:x:1000:\nwww-data:x:33:app,other\nlog:x:4:nohome,app\n".into(),
        }
    }

    #[test]
    fn a_user_by_name_or_number_with_its_groups() {
        let app = accounts().resolve("app", None).unwrap();
        assert_eq!(
            app,
            RunAs {
                identity: Identity {
                    uid: 1000,
                    gid: 1000,
                    groups: vec![4, 33, 1000]
                },
                name: Some("app".into()),
                home: "/home/app".into(),
            }
        );
        assert_eq!(accounts().resolve("1000", None).unwrap(), app);
        let other_group = accounts().resolve("app", Some("www-data")).unwrap();
        assert_eq!(other_group.identity.gid, 33);
        assert_eq!(other_group.identity.groups, [4, 33]);
        assert_eq!(
            accounts().resolve("app", Some("50")).unwrap().identity.gid,
            50
        );
        assert_eq!(accounts().resolve("nohome", None).unwrap().home, "/");
    }

    #[test]
    fn a_number_need_not_be_known_but_a_name_must() {
        let stranger = accounts().resolve("4242", None).unwrap();
        assert_eq!(
            (
                stranger.identity.uid,
                stranger.identity.gid,
                stranger.name,
                stranger.home.as_str()
            ),
            (4242, 0, None, "/")
        );
        assert_eq!(
            accounts().resolve("nobody", None).unwrap_err(),
            "user \"nobody\" is not in /etc/passwd"
        );
        assert_eq!(
            accounts().resolve("app", Some("staff")).unwrap_err(),
            "group \"staff\" is not in /etc/group"
        );
    }
}
