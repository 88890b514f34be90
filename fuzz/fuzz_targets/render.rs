//! `pilot -render` on arbitrary input: decoding what the control socket's `/v3/watches` answered,
//! then rendering a template over it, must return an error or text, never panic or run away.
//!
//! The input is the template; after a NUL byte, the rest is the watches' JSON. Without a NUL
//! byte (or when that JSON does not decode) the template renders over a fixed set of watches.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use pilot::consul::{Instance, KvPair};
use pilot::render::render;
use pilot::watches::Snapshot;

fn fixed() -> Vec<Snapshot> {
    let instance = |id: &str, port: u16| Instance {
        node: "node-1".into(),
        id: id.into(),
        name: "hello".into(),
        address: "10.0.0.7".into(),
        port,
        tags: vec!["v1".into(), "blue".into()],
        meta: BTreeMap::from([("zone".to_string(), "a".to_string())]),
    };
    vec![
        Snapshot {
            name: "hello".into(),
            service: "hello".into(),
            instances: Some(vec![instance("hello-1", 8080), instance("hello-2", 8081)]),
            ..Snapshot::default()
        },
        Snapshot {
            name: "world".into(),
            service: "world".into(),
            tag: Some("blue".into()),
            dc: Some("dc1".into()),
            error: Some("no answer".into()),
            ..Snapshot::default()
        },
        Snapshot {
            name: "flags".into(),
            prefix: Some("app/".into()),
            pairs: Some(vec![
                KvPair {
                    key: "app/config.json".into(),
                    flags: 0,
                    value: br#"{"port": 80, "hosts": ["a", "b"]}"#.to_vec(),
                },
                KvPair {
                    key: "app/raw".into(),
                    flags: 7,
                    value: b"\xff\xfe".to_vec(),
                },
            ]),
            ..Snapshot::default()
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let (template, json) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(template) = std::str::from_utf8(template) else {
        return;
    };
    let watches = json
        .and_then(|j| serde_json::from_slice::<Vec<Snapshot>>(j).ok())
        .unwrap_or_else(fixed);
    let env = BTreeMap::from([("HOST".to_string(), "fuzz".to_string())]);
    let _ = render(template, &watches, &env);
});
