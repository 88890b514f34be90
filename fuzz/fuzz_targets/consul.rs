//! Decoding Consul's `/v1/health/service/<name>` and `/v1/kv/<key>` answers: whatever the agent (or anything in
//! front of it) sends, truncated or of the wrong types, decoding returns instances or an error,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pilot::consul::decode_health_service(data);
    let _ = pilot::consul::decode_kv(data);
});
