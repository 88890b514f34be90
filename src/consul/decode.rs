//! Decoding Consul's answers. Pure functions over bytes, so that they can be fuzzed: whatever the
//! agent (or a proxy in front of it) sends, decoding returns an error rather than panicking.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// One instance of a service, from `/v1/health/service/<name>`. It serialises with Consul's
/// capitalised field names (`ID`, `Address`...), the names templates use, for `/v3/watches`.
/// Instances sort by service ID first (as ContainerPilot sorted them), then node: the order in
/// which templates see them.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "PascalCase")]
pub struct Instance {
    /// The service ID (`<name>-<hostname>` for pilot's services).
    #[serde(rename = "ID")]
    pub id: String,
    /// The node's name.
    pub node: String,
    /// The service name.
    pub name: String,
    /// Where to reach it: the service address, or the node's when the service has none.
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
}

/// Why an answer could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct DecodeError(String);

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "Node", default, deserialize_with = "nullable")]
    node: Node,
    #[serde(rename = "Service", default, deserialize_with = "nullable")]
    service: Service,
}

#[derive(Default, Deserialize)]
struct Node {
    #[serde(rename = "Node", default, deserialize_with = "nullable")]
    node: String,
    #[serde(rename = "Address", default, deserialize_with = "nullable")]
    address: String,
}

#[derive(Default, Deserialize)]
struct Service {
    #[serde(rename = "ID", default, deserialize_with = "nullable")]
    id: String,
    #[serde(rename = "Service", default, deserialize_with = "nullable")]
    service: String,
    #[serde(rename = "Tags", default, deserialize_with = "nullable")]
    tags: Vec<String>,
    #[serde(rename = "Address", default, deserialize_with = "nullable")]
    address: String,
    #[serde(rename = "Meta", default, deserialize_with = "nullable")]
    meta: BTreeMap<String, String>,
    /// Newer agents leave out `Port` when it is 0.
    #[serde(rename = "Port", default, deserialize_with = "nullable")]
    port: u16,
}

/// `null` reads as the default, as Go's decoder leaves a nil slice or map.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Decodes the body of `GET /v1/health/service/<name>`: a JSON array of `{Node, Service,
/// Checks}`. Unknown fields are ignored (every Consul release adds some); a missing `Port` is 0,
/// `null` tags or meta are empty, and an empty service address falls back to the node's.
pub fn decode_health_service(body: &[u8]) -> Result<Vec<Instance>, DecodeError> {
    // Each entry becomes its instance as it is read: one vector of instances, rather than one of
    // entries and then another (an answer can hold thousands).
    let decoded: Vec<Decoded> =
        serde_json::from_slice(body).map_err(|e| DecodeError(e.to_string()))?;
    Ok(decoded.into_iter().map(|d| d.0).collect())
}

/// An instance, read from an entry.
#[derive(Deserialize)]
#[serde(from = "Entry")]
struct Decoded(Instance);

impl From<Entry> for Decoded {
    fn from(e: Entry) -> Decoded {
        Decoded(Instance {
            node: e.node.node,
            id: e.service.id,
            name: e.service.service,
            address: if e.service.address.is_empty() {
                e.node.address
            } else {
                e.service.address
            },
            port: e.service.port,
            tags: e.service.tags,
            meta: e.service.meta,
        })
    }
}

/// One key of the KV store, from `/v1/kv/<key>[?recurse]`. Values are bytes (Consul stores any
/// bytes); they travel as base64 in JSON, as Consul sends them, in `/v3/watches` too. Pairs sort
/// by key.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "PascalCase")]
pub struct KvPair {
    pub key: String,
    #[serde(default, deserialize_with = "nullable")]
    pub flags: u64,
    #[serde(default, with = "base64_value")]
    pub value: Vec<u8>,
}

/// A KV value in JSON: base64, with `null` for no value (as Consul sends an empty one).
mod base64_value {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if value.is_empty() {
            s.serialize_none()
        } else {
            s.serialize_str(&crate::base64::encode(value))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Vec::new()),
            Some(text) => crate::base64::decode(&text).map_err(serde::de::Error::custom),
        }
    }
}

/// Decodes the body of `GET /v1/kv/<key>[?recurse]`: a JSON array of `{Key, Flags, Value, ...}`,
/// sorted by key. Unknown fields are ignored.
pub fn decode_kv(body: &[u8]) -> Result<Vec<KvPair>, DecodeError> {
    let mut pairs: Vec<KvPair> =
        serde_json::from_slice(body).map_err(|e| DecodeError(e.to_string()))?;
    pairs.sort();
    Ok(pairs)
}

/// Decodes the body of `GET /v1/status/leader`: a JSON string, empty when there is no leader.
pub(crate) fn decode_leader(body: &[u8]) -> Result<String, DecodeError> {
    serde_json::from_slice(body).map_err(|e| DecodeError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"[
      {"Node": {"ID": "40e4", "Node": "node-1", "Address": "10.0.0.5", "Datacenter": "dc1",
                "TaggedAddresses": {"lan": "10.0.0.5"}, "Meta": {}, "CreateIndex": 12, "ModifyIndex": 14},
       "Service": {"ID": "app-9f2c", "Service": "app", "Tags": ["v1"], "Address": "10.0.0.7",
                   "Meta": {"version": "1"}, "Port": 8080, "Weights": {"Passing": 1, "Warning": 1},
                   "EnableTagOverride": false, "Proxy": {"MeshGateway": {}}, "Connect": {},
                   "CreateIndex": 40, "ModifyIndex": 40},
       "Checks": [{"CheckID": "serfHealth", "Status": "passing"}]},
      {"Node": {"Node": "node-2", "Address": "10.0.0.6"},
       "Service": {"ID": "app-2", "Service": "app", "Tags": null, "Address": "", "Meta": null},
       "Checks": []}
    ]"#;

    #[test]
    fn decodes_instances_with_the_node_address_fallback() {
        let got = decode_health_service(SAMPLE.as_bytes()).unwrap();
        assert_eq!(
            got,
            vec![
                Instance {
                    node: "node-1".into(),
                    id: "app-9f2c".into(),
                    name: "app".into(),
                    address: "10.0.0.7".into(),
                    port: 8080,
                    tags: vec!["v1".into()],
                    meta: [("version".to_string(), "1".to_string())].into(),
                },
                Instance {
                    node: "node-2".into(),
                    id: "app-2".into(),
                    name: "app".into(),
                    address: "10.0.0.6".into(),
                    port: 0,
                    tags: vec![],
                    meta: BTreeMap::new(),
                },
            ]
        );
    }

    #[test]
    fn an_empty_list_is_no_instance() {
        assert_eq!(decode_health_service(b"[]").unwrap(), vec![]);
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        let samples: &[&[u8]] = &[
            b"",
            b"null",
            b"{}",
            b"[",
            b"[{\"Service\": {\"Port\": \"80\"}}]",
            b"[{\"Service\": {\"Port\": 70000}}]",
            b"[{\"Service\": {\"Port\": -1}}]",
            b"[{\"Service\": {\"Tags\": [1, 2]}}]",
            b"[{\"Service\": {\"Meta\": {\"a\": 1}}}]",
            b"[{\"Node\": 5}]",
            b"[1]",
            b"\xff\xfe",
        ];
        for s in samples {
            assert!(
                decode_health_service(s).is_err(),
                "{:?}",
                String::from_utf8_lossy(s)
            );
        }
        // Every prefix of a valid body: an error, never a panic.
        for cut in 0..SAMPLE.len() - 1 {
            assert!(decode_health_service(&SAMPLE.as_bytes()[..cut]).is_err());
        }
    }

    #[test]
    fn missing_parts_default() {
        let got =
            decode_health_service(br#"[{"Checks": []}, {"Node": null, "Service": null}]"#).unwrap();
        assert_eq!(got, vec![Instance::default(), Instance::default()]);
    }

    #[test]
    fn instances_sort_by_id_then_node() {
        let instance = |id: &str, node: &str| Instance {
            id: id.into(),
            node: node.into(),
            ..Instance::default()
        };
        let mut list = vec![
            instance("b", "n1"),
            instance("a", "n2"),
            instance("a", "n1"),
        ];
        list.sort();
        assert_eq!(
            list,
            [
                instance("a", "n1"),
                instance("a", "n2"),
                instance("b", "n1")
            ]
        );
    }

    #[test]
    fn kv_pairs_decode_with_their_bytes() {
        let body = br#"[{"LockIndex":0,"Key":"app/b","Flags":42,"Value":"/w==","CreateIndex":5,"ModifyIndex":7},
                        {"Key":"app/a","Flags":0,"Value":null,"Session":"x"}]"#;
        let pairs = decode_kv(body).unwrap();
        assert_eq!(
            pairs,
            [
                KvPair {
                    key: "app/a".into(),
                    flags: 0,
                    value: vec![],
                },
                KvPair {
                    key: "app/b".into(),
                    flags: 42,
                    value: vec![0xff],
                },
            ]
        );
        let json = serde_json::to_string(&pairs[1]).unwrap();
        assert_eq!(json, r#"{"Key":"app/b","Flags":42,"Value":"/w=="}"#);
        assert_eq!(serde_json::from_str::<KvPair>(&json).unwrap(), pairs[1]);
        for bad in [
            &b"{}"[..],
            b"[{\"Key\":\"a\",\"Value\":\"!!\"}]",
            b"[1]",
            b"\xff",
        ] {
            assert!(decode_kv(bad).is_err());
        }
    }

    #[test]
    fn leader_is_a_json_string() {
        assert_eq!(
            decode_leader(b"\"10.0.0.1:8300\"").unwrap(),
            "10.0.0.1:8300"
        );
        assert_eq!(decode_leader(b"\"\"").unwrap(), "");
        assert!(decode_leader(b"10").is_err());
    }
}
