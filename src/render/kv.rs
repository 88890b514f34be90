//! consul-template's KV functions over the KV watches' snapshots: `key`, `keyOrDefault`, `ls`
//! and `tree`. A key is answered by a watch on that key or on a prefix above it; `ls` and
//! `tree` by a watch on that prefix or one above it. A template never reaches Consul itself:
//! asking for what no watch follows is an error that says which watch to add.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::Value;

use crate::consul::KvPair;
use crate::template::{err, string_arg, text_of};
use crate::watches::Snapshot;

/// The functions, over `watches`.
pub fn functions(watches: &Arc<Vec<Snapshot>>) -> gotmpl::FuncMap {
    let mut map = gotmpl::FuncMap::new();
    let w = watches.clone();
    map.insert(
        "key".into(),
        Arc::new(move |args: &[Value]| {
            let [path] = args else {
                return Err(arg_count("key", "1", args.len()));
            };
            let path = string_arg(path)?;
            let (watch, pair) = lookup(&w, path)?;
            match pair {
                Some(pair) => Ok(Value::String(Arc::from(text_of(&pair.value)))),
                None if watch.pairs.is_none() => Err(err(format!(
                    "key {path:?}: the watch {:?} has no answer from Consul yet (keyOrDefault gives a default)",
                    watch.name
                ))),
                None => Err(err(format!(
                    "key {path:?} does not exist in Consul (keyOrDefault gives a default)"
                ))),
            }
        }),
    );
    let w = watches.clone();
    map.insert(
        "keyOrDefault".into(),
        Arc::new(move |args: &[Value]| {
            let [path, default] = args else {
                return Err(arg_count("keyOrDefault", "2", args.len()));
            };
            let (path, default) = (string_arg(path)?, string_arg(default)?);
            Ok(Value::String(Arc::from(match lookup(&w, path)?.1 {
                Some(pair) => text_of(&pair.value),
                None => default.to_string(),
            })))
        }),
    );
    let w = watches.clone();
    map.insert(
        "ls".into(),
        Arc::new(move |args: &[Value]| list(&w, "ls", args, |relative| !relative.contains('/'))),
    );
    let w = watches.clone();
    map.insert(
        "tree".into(),
        Arc::new(move |args: &[Value]| list(&w, "tree", args, |relative| !relative.ends_with('/'))),
    );
    map
}

fn arg_count(name: &str, want: &str, got: usize) -> gotmpl::TemplateError {
    err(format!(
        "{name}: wrong number of arguments, expected {want}, but got {got}"
    ))
}

/// The watch that follows `path`, and the pair at `path`: `None` when the key is missing, or
/// before the watch's first answer.
fn lookup<'a>(
    watches: &'a [Snapshot],
    path: &str,
) -> gotmpl::Result<(&'a Snapshot, Option<&'a KvPair>)> {
    let path = path.trim_start_matches('/');
    let watch = watches.iter().find(|w| {
        w.key.as_deref() == Some(path) || w.prefix.as_deref().is_some_and(|p| path.starts_with(p))
    });
    let Some(watch) = watch else {
        return Err(err(format!(
            "key {path:?}: no watch follows it; add {{ name: {:?}, key: {path:?}, interval: 10 }} to watches ({})",
            suggested_name(path),
            known(watches)
        )));
    };
    let pair = watch
        .pairs
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|p| p.key == path);
    Ok((watch, pair))
}

/// `ls`/`tree "prefix"`: the pairs under the prefix whose key relative to it passes `keep`, each
/// with `.Key` (relative to the prefix), `.Path` (the whole key), `.Value` and `.Flags`. Before
/// the watch's first answer there is none.
fn list(
    watches: &[Snapshot],
    name: &str,
    args: &[Value],
    keep: fn(&str) -> bool,
) -> gotmpl::Result<Value> {
    let [prefix] = args else {
        return Err(arg_count(name, "1", args.len()));
    };
    let prefix = string_arg(prefix)?.trim_start_matches('/');
    // `tree "app/flags"` is answered by a watch on `app/flags/` too.
    let covers = |p: &str| prefix.starts_with(p) || format!("{prefix}/").starts_with(p);
    let watch = watches
        .iter()
        .find(|w| w.prefix.as_deref().is_some_and(covers));
    let Some(watch) = watch else {
        return Err(err(format!(
            "{name} {prefix:?}: no watch follows it; add {{ name: {:?}, prefix: {prefix:?}, interval: 10 }} to watches ({})",
            suggested_name(prefix),
            known(watches)
        )));
    };
    let pairs = watch.pairs.as_deref().unwrap_or_default();
    let entries: Vec<Value> = pairs
        .iter()
        .filter_map(|pair| {
            let relative = pair.key.strip_prefix(prefix)?.trim_start_matches('/');
            (!relative.is_empty() && keep(relative)).then(|| entry(pair, relative))
        })
        .collect();
    Ok(Value::List(entries.into()))
}

fn entry(pair: &KvPair, relative: &str) -> Value {
    let text = |s: &str| Value::String(Arc::from(s));
    let mut fields: BTreeMap<Arc<str>, Value> = BTreeMap::new();
    fields.insert("Key".into(), text(relative));
    fields.insert("Path".into(), text(&pair.key));
    fields.insert("Value".into(), text(&text_of(&pair.value)));
    fields.insert("Flags".into(), Value::Uint(pair.flags));
    Value::Map(Arc::new(fields))
}

/// A watch name for `path`: its last part, as a service name (`app/config.json` gives
/// `config-json`).
fn suggested_name(path: &str) -> String {
    let last = path.split('/').rev().find(|p| !p.is_empty()).unwrap_or("");
    let name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-');
    if name.len() >= 2 && name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.to_string()
    } else {
        format!("kv-{name}").trim_end_matches('-').to_string()
    }
}

/// The KV watches there are, for an error message.
fn known(watches: &[Snapshot]) -> String {
    let kv: Vec<String> = watches
        .iter()
        .filter_map(|w| match (&w.key, &w.prefix) {
            (Some(key), _) => Some(format!("{} on key {key:?}", w.name)),
            (_, Some(prefix)) => Some(format!("{} on prefix {prefix:?}", w.name)),
            _ => None,
        })
        .collect();
    if kv.is_empty() {
        "KV watches: none".into()
    } else {
        format!("KV watches: {}", kv.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::render::render;

    fn pair(key: &str, value: &[u8]) -> KvPair {
        KvPair {
            key: key.into(),
            flags: 0,
            value: value.to_vec(),
        }
    }

    fn key_watch(name: &str, key: &str, pairs: Option<Vec<KvPair>>) -> Snapshot {
        Snapshot {
            name: name.into(),
            key: Some(key.into()),
            pairs,
            ..Snapshot::default()
        }
    }

    fn prefix_watch(name: &str, prefix: &str, pairs: Vec<KvPair>) -> Snapshot {
        Snapshot {
            name: name.into(),
            prefix: Some(prefix.into()),
            pairs: Some(pairs),
            ..Snapshot::default()
        }
    }

    fn watches() -> Vec<Snapshot> {
        vec![
            key_watch(
                "appcfg",
                "app/config.json",
                Some(vec![pair(
                    "app/config.json",
                    br#"{"port": 8080, "debug": true}"#,
                )]),
            ),
            prefix_watch(
                "flags",
                "app/flags/",
                vec![
                    pair("app/flags/", b""),
                    pair("app/flags/a", b"on"),
                    pair("app/flags/b", b"off"),
                    pair("app/flags/team/", b""),
                    pair("app/flags/team/c", b"\xff\xfe"),
                ],
            ),
            key_watch("missing", "app/missing", Some(vec![])),
            key_watch("early", "app/early", None),
        ]
    }

    fn r(text: &str) -> Result<String, String> {
        render(text, &watches(), &BTreeMap::new()).map_err(|e| e.0)
    }

    #[test]
    fn key_and_key_or_default() {
        assert_eq!(
            r(r#"{{ key "app/config.json" }}"#).unwrap(),
            r#"{"port": 8080, "debug": true}"#
        );
        assert_eq!(
            r(r#"{{ with key "app/config.json" | parseJSON }}{{ .port }}{{ end }}"#).unwrap(),
            "8080"
        );
        // A prefix watch answers for the keys under it.
        assert_eq!(r(r#"{{ key "app/flags/a" }}"#).unwrap(), "on");
        assert_eq!(r(r#"{{ key "/app/flags/a" }}"#).unwrap(), "on");
        assert_eq!(
            r(r#"{{ keyOrDefault "app/missing" "none" }}|{{ keyOrDefault "app/early" "later" }}|{{ keyOrDefault "app/flags/zz" "z" }}"#)
                .unwrap(),
            "none|later|z"
        );
        let e = r(r#"{{ key "app/missing" }}"#).unwrap_err();
        assert!(
            e.contains("key \"app/missing\" does not exist in Consul"),
            "{e}"
        );
    }

    #[test]
    fn ls_lists_the_top_level_and_tree_every_key() {
        assert_eq!(
            r(r#"{{ range ls "app/flags/" }}{{ .Key }}={{ .Value }};{{ end }}"#).unwrap(),
            "a=on;b=off;"
        );
        assert_eq!(
            r(r#"{{ range tree "app/flags" }}{{ .Key }} {{ .Path }} {{ .Flags }};{{ end }}"#)
                .unwrap(),
            "a app/flags/a 0;b app/flags/b 0;team/c app/flags/team/c 0;"
        );
        assert_eq!(
            r(r#"{{ range tree "app/flags/team/" }}{{ .Key }}={{ .Value }}{{ end }}"#).unwrap(),
            "c=\u{fffd}\u{fffd}",
            "bytes that are not UTF-8 are replaced, not fatal"
        );
    }

    #[test]
    fn what_no_watch_follows_names_the_watch_to_add() {
        let e = r(r#"{{ key "other/db.json" }}"#).unwrap_err();
        assert!(
            e.contains(r#"key "other/db.json": no watch follows it; add { name: "db-json", key: "other/db.json", interval: 10 } to watches (KV watches: appcfg on key "app/config.json", flags on prefix "app/flags/", missing on key "app/missing", early on key "app/early")"#),
            "{e}"
        );
        let e = r(r#"{{ ls "app/" }}"#).unwrap_err();
        assert!(
            e.contains(r#"ls "app/": no watch follows it; add { name: "app", prefix: "app/", interval: 10 }"#),
            "{e}"
        );
        assert_eq!(suggested_name("x/1"), "kv-1");
        assert_eq!(suggested_name(""), "kv");
    }
}
