//! The whole config pipeline on arbitrary input: template rendering, JSON5, decoding and
//! validation must return an error or a config, never panic, overflow the stack, or run away
//! with memory.
//!
//! The input is the config text; after a NUL byte, the rest is the value of the environment
//! variables `FUZZ` and `N`, so that templates have data to work on.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pilot::config::{LoadContext, StaticInterfaces, json5, load_text, render};

fuzz_target!(|data: &[u8]| {
    let (text, value) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let value = String::from_utf8_lossy(value).into_owned();
    let env = BTreeMap::from([
        ("FUZZ".to_string(), value.clone()),
        ("N".to_string(), value),
        ("CONSUL".to_string(), "consul:8500".to_string()),
    ]);
    let ctx = LoadContext::new(
        env.clone(),
        "fuzzhost",
        StaticInterfaces::from_pairs(&[
            ("eth0", "10.0.0.2"),
            ("eth0", "fd00::2"),
            ("lo", "127.0.0.1"),
            ("lo", "::1"),
        ]),
    );
    // The parser on its own, since most inputs never get past the template.
    let _ = json5::parse(text);
    let _ = render(text, &env);
    let _ = load_text(text, Path::new("fuzz.json5"), &ctx);
});
