//! `pilot -render TEMPLATE:DEST[:COMMAND]`: renders a Go template over the running pilot's watch
//! data, writes DEST atomically, and runs COMMAND only when DEST's content changed. It replaces
//! consul-template in the nginx pattern.
//!
//! The template has ContainerPilot's config functions (`default`, `split`, `join`, `env`, ...),
//! the environment as its data, and `service "name"` (or `service "name" "tag"` when several
//! watches follow one service), which returns the healthy instances of that watch, sorted, each
//! with `.ID`, `.Node`, `.Name`, `.Address`, `.Port`, `.Tags` and `.Meta`:
//!
//! ```text
//! upstream hello {
//! {{- range service "hello" }}
//!   server {{ .Address }}:{{ .Port }};
//! {{- end }}
//! }
//! ```
//!
//! The KV watches answer consul-template's `key`, `keyOrDefault`, `ls` and `tree` (`kv.rs`), and
//! the template has its `parseJSON`, `toJSON` and `base64Decode` too.
//!
//! The watch data comes from the control socket (`GET /v3/watches`); this module renders and
//! writes, the subcommand in `subcommand.rs` talks to the socket and runs COMMAND.

mod kv;
pub mod subcommand;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gotmpl::Value;

use crate::consul::Instance;
use crate::template::{Parsed, TemplateError, data_functions, err, parse_with, string_arg};
use crate::watches::Snapshot;

/// One `-render` argument: `TEMPLATE:DEST[:COMMAND]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub template: PathBuf,
    pub dest: PathBuf,
    /// Run (split with shell-style quoting, without a shell) when DEST changed.
    pub command: Option<String>,
}

impl Target {
    /// Parses `TEMPLATE:DEST[:COMMAND]`. COMMAND may itself contain `:`.
    pub fn parse(spec: &str) -> Result<Target, String> {
        let mut parts = spec.splitn(3, ':');
        let template = parts.next().unwrap_or_default();
        let dest = parts.next().unwrap_or_default();
        if template.is_empty() || dest.is_empty() {
            return Err(format!(
                "-render {spec:?}: expected TEMPLATE:DEST[:COMMAND]"
            ));
        }
        let command = parts
            .next()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        Ok(Target {
            template: template.into(),
            dest: dest.into(),
            command,
        })
    }
}

/// Renders `text` over `watches`, with `env` as the data and for `env`.
pub fn render(
    text: &str,
    watches: &[Snapshot],
    env: &BTreeMap<String, String>,
) -> Result<String, TemplateError> {
    parse(text, watches, env)?.execute()
}

/// Parses `text` as `render` does, to execute later: `-render` parses every template before it
/// renders any.
pub fn parse(
    text: &str,
    watches: &[Snapshot],
    env: &BTreeMap<String, String>,
) -> Result<Parsed, TemplateError> {
    let watches: Arc<Vec<Snapshot>> = Arc::new(watches.to_vec());
    let mut extra = data_functions();
    extra.extend(kv::functions(&watches));
    extra.insert(
        "service".into(),
        Arc::new(move |args: &[Value]| service(&watches, args)),
    );
    parse_with(text, env, extra)
}

/// `service "name" ["tag"]`: the instances of the watch on that service (and tag).
fn service(watches: &[Snapshot], args: &[Value]) -> gotmpl::Result<Value> {
    let (name, tag) = match args {
        [name] => (string_arg(name)?, None),
        [name, tag] => (string_arg(name)?, Some(string_arg(tag)?)),
        _ => {
            return Err(err(format!(
                "service: wrong number of arguments, expected 1 or 2, but got {}",
                args.len()
            )));
        }
    };
    // A KV watch has no service.
    let services = || watches.iter().filter(|w| !w.service.is_empty());
    let found =
        services().find(|w| w.service == name && tag.is_none_or(|t| w.tag.as_deref() == Some(t)));
    let Some(watch) = found else {
        let known: Vec<String> = services()
            .map(|w| match &w.tag {
                Some(tag) => format!("{} (tag {tag})", w.service),
                None => w.service.clone(),
            })
            .collect();
        let wanted = match tag {
            Some(tag) => format!("{name:?} with tag {tag:?}"),
            None => format!("{name:?}"),
        };
        return Err(err(format!(
            "service {wanted}: no watch follows it (watches: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    // Before Consul's first answer a watch knows no instance: render none rather than fail, so
    // that a pre-start render works; the first answer with instances is a `changed` event.
    let instances = watch.instances.as_deref().unwrap_or_default();
    Ok(Value::List(
        instances.iter().map(instance).collect::<Vec<_>>().into(),
    ))
}

fn instance(i: &Instance) -> Value {
    let text = |s: &str| Value::String(Arc::from(s));
    let mut fields: BTreeMap<Arc<str>, Value> = BTreeMap::new();
    fields.insert("ID".into(), text(&i.id));
    fields.insert("Node".into(), text(&i.node));
    fields.insert("Name".into(), text(&i.name));
    fields.insert("Address".into(), text(&i.address));
    fields.insert("Port".into(), Value::Int(i64::from(i.port)));
    fields.insert(
        "Tags".into(),
        Value::List(i.tags.iter().map(|t| text(t)).collect::<Vec<_>>().into()),
    );
    let meta: BTreeMap<Arc<str>, Value> = i
        .meta
        .iter()
        .map(|(k, v)| (Arc::from(k.as_str()), text(v)))
        .collect();
    fields.insert("Meta".into(), Value::Map(Arc::new(meta)));
    Value::Map(Arc::new(fields))
}

/// Writes `content` to `dest` unless it already holds exactly that. The new content goes to a
/// temporary file in the same directory, which replaces `dest` by a rename, so a reader sees the
/// old file or the new one, never a part. The file keeps `dest`'s permission bits (0644 for a
/// new file). Returns whether `dest` changed.
pub fn write_if_changed(dest: &Path, content: &str) -> io::Result<bool> {
    let mode = match std::fs::metadata(dest) {
        Ok(meta) => {
            if std::fs::read(dest).is_ok_and(|old| old == content.as_bytes()) {
                return Ok(false);
            }
            meta.permissions().mode() & 0o7777
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0o644,
        Err(e) => return Err(e),
    };
    let dir = directory_of(dest);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.pilot-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(content.as_bytes())?;
        // The mode given to open is filtered by the umask; the file must end up like `dest`.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&temp, dest)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    Ok(true)
}

/// The directory `path` is in (`.` for a bare file name).
pub(crate) fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(service: &str, tag: Option<&str>, instances: Option<Vec<Instance>>) -> Snapshot {
        Snapshot {
            name: service.into(),
            service: service.into(),
            tag: tag.map(Into::into),
            instances,
            ..Snapshot::default()
        }
    }

    fn instance(id: &str, address: &str, port: u16) -> Instance {
        Instance {
            node: "node-1".into(),
            id: id.into(),
            name: "hello".into(),
            address: address.into(),
            port,
            tags: vec!["v1".into()],
            meta: [("zone".to_string(), "a".to_string())]
                .into_iter()
                .collect(),
        }
    }

    const UPSTREAM: &str = "upstream hello {\n{{- range service \"hello\" }}\n  server {{ .Address }}:{{ .Port }};\n{{- else }}\n  server 127.0.0.1:65535 down;\n{{- end }}\n}\n";

    #[test]
    fn renders_no_one_and_many_instances() {
        let env = BTreeMap::new();
        let none = render(UPSTREAM, &[watch("hello", None, Some(vec![]))], &env).unwrap();
        assert_eq!(
            none,
            "upstream hello {\n  server 127.0.0.1:65535 down;\n}\n"
        );
        let one = render(
            UPSTREAM,
            &[watch(
                "hello",
                None,
                Some(vec![instance("a", "10.0.0.1", 80)]),
            )],
            &env,
        )
        .unwrap();
        assert_eq!(one, "upstream hello {\n  server 10.0.0.1:80;\n}\n");
        let many: Vec<Instance> = (1..=10)
            .map(|i| instance(&format!("h{i:02}"), &format!("10.0.0.{i}"), 8000))
            .collect();
        let text = render(UPSTREAM, &[watch("hello", None, Some(many))], &env).unwrap();
        assert_eq!(text.matches("server 10.0.0.").count(), 10);
    }

    #[test]
    fn every_instance_field_and_the_config_functions_are_there() {
        let env: BTreeMap<String, String> = [("ZONE".to_string(), "eu".to_string())]
            .into_iter()
            .collect();
        let text = render(
            "{{ range service \"hello\" }}{{ .ID }} {{ .Node }} {{ .Name }} {{ .Address }} {{ .Port }} {{ join \",\" .Tags }} {{ .Meta.zone }} {{ env \"ZONE\" }} {{ .ZONE | default \"x\" }}{{ end }}",
            &[watch("hello", None, Some(vec![instance("a", "10.0.0.1", 80)]))],
            &env,
        )
        .unwrap();
        assert_eq!(text, "a node-1 hello 10.0.0.1 80 v1 a eu x");
    }

    #[test]
    fn a_tag_picks_between_watches_of_one_service() {
        let watches = [
            watch(
                "hello",
                Some("blue"),
                Some(vec![instance("b", "10.0.0.2", 80)]),
            ),
            watch(
                "hello",
                Some("green"),
                Some(vec![instance("g", "10.0.0.3", 80)]),
            ),
        ];
        let env = BTreeMap::new();
        let text = render(
            "{{ range service \"hello\" \"green\" }}{{ .ID }}{{ end }}",
            &watches,
            &env,
        )
        .unwrap();
        assert_eq!(text, "g");
    }

    #[test]
    fn an_unknown_watch_is_an_error_that_lists_the_known_ones() {
        let err = render(
            "{{ service \"nope\" }}",
            &[watch("hello", None, None)],
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(
            err.0
                .contains("service \"nope\": no watch follows it (watches: hello)"),
            "{err}"
        );
    }

    #[test]
    fn a_watch_without_an_answer_yet_has_no_instance() {
        let text = render(UPSTREAM, &[watch("hello", None, None)], &BTreeMap::new()).unwrap();
        assert!(text.contains("down"));
    }

    #[test]
    fn targets_parse_with_and_without_a_command() {
        assert_eq!(
            Target::parse("/t.tmpl:/etc/nginx.conf:nginx -s reload").unwrap(),
            Target {
                template: "/t.tmpl".into(),
                dest: "/etc/nginx.conf".into(),
                command: Some("nginx -s reload".into()),
            }
        );
        assert_eq!(Target::parse("a:b").unwrap().command, None);
        assert_eq!(
            Target::parse("a:b:sh -c 'echo a:b'")
                .unwrap()
                .command
                .as_deref(),
            Some("sh -c 'echo a:b'")
        );
        assert!(Target::parse("a").is_err());
        assert!(Target::parse(":b").is_err());
    }

    #[test]
    fn writes_atomically_keeps_the_mode_and_reports_changes() {
        let dir = std::env::temp_dir().join(format!("pilot-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("out.conf");
        let _ = std::fs::remove_file(&dest);
        assert!(write_if_changed(&dest, "one\n").unwrap());
        assert_eq!(
            std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o644
        );
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            !write_if_changed(&dest, "one\n").unwrap(),
            "same content: no change"
        );
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&dest).unwrap());
        assert!(write_if_changed(&dest, "two\n").unwrap());
        let meta = std::fs::metadata(&dest).unwrap();
        assert_ne!(
            std::os::unix::fs::MetadataExt::ino(&meta),
            inode,
            "replaced by a rename"
        );
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "the mode is kept");
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "two\n");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "out.conf")
            .collect();
        assert!(
            leftovers.is_empty(),
            "no temporary file left: {leftovers:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
