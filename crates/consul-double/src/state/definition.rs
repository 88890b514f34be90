//! Decoded registration requests: what a `PUT /v1/agent/service/register` or
//! `/v1/agent/check/register` body means once JSON quirks are dealt with.
//!
//! Validation that produces Consul's 400 texts lives here too, because the Rust API and the HTTP
//! API must reject the same definitions with the same words.

use std::collections::BTreeMap;

use crate::state::types::{CheckStatus, ServiceAddress, Weights};

/// One check of a registration (Consul's `CheckType`, plus the standalone fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckDefinition {
    /// `CheckID` (or `ID` for standalone checks).
    pub check_id: String,
    /// `Name`
    pub name: String,
    /// `Status` as given (validated later).
    pub status: String,
    /// `Notes`
    pub notes: String,
    /// `ServiceID` (standalone checks only).
    pub service_id: String,
    /// TTL in nanoseconds.
    pub ttl: i64,
    /// Interval in nanoseconds.
    pub interval: i64,
    /// Timeout in nanoseconds.
    pub timeout: i64,
    /// `DeregisterCriticalServiceAfter` in nanoseconds.
    pub deregister_critical_service_after: i64,
    /// `HTTP`
    pub http: String,
    /// `Method`
    pub method: String,
    /// `Header`
    pub header: BTreeMap<String, Vec<String>>,
    /// `Body`
    pub body: String,
    /// `TCP`
    pub tcp: String,
    /// `GRPC`
    pub grpc: String,
    /// `ScriptArgs` / `Args`
    pub script_args: Vec<String>,
    /// `DockerContainerID`
    pub docker_container_id: String,
    /// `Shell`
    pub shell: String,
    /// `AliasNode`
    pub alias_node: String,
    /// `AliasService`
    pub alias_service: String,
    /// `TLSSkipVerify`
    pub tls_skip_verify: bool,
    /// `GRPCUseTLS`
    pub grpc_use_tls: bool,
    /// `OutputMaxSize` (0 = the agent default).
    pub output_max_size: i64,
    /// `SuccessBeforePassing`
    pub success_before_passing: i64,
    /// `FailuresBeforeCritical`
    pub failures_before_critical: i64,
}

impl CheckDefinition {
    /// Consul ignores an all-zero `Check` object (`CheckType.Empty`).
    pub fn is_empty(&self) -> bool {
        *self == CheckDefinition::default()
    }

    fn is_script(&self) -> bool {
        !self.script_args.is_empty()
    }

    fn is_alias(&self) -> bool {
        !self.alias_service.is_empty()
    }

    /// Consul's `CheckType.Validate`, the text after `Invalid check: `.
    pub fn validate(&self) -> Result<(), String> {
        let interval_check = self.is_script()
            || !self.http.is_empty()
            || !self.tcp.is_empty()
            || !self.grpc.is_empty();
        if self.interval > 0 && self.ttl > 0 {
            return Err("Interval and TTL cannot both be specified".into());
        }
        if interval_check && self.interval <= 0 {
            return Err("Interval must be > 0 for Script, HTTP, or TCP checks".into());
        }
        if self.is_alias() {
            if self.ttl > 0 {
                return Err("TTL must be not be set for Alias checks".into());
            }
            if self.interval > 0 {
                return Err("Interval cannot be set for Alias checks".into());
            }
        }
        if !interval_check && !self.is_alias() && self.ttl <= 0 {
            return Err("TTL must be > 0 for TTL checks".into());
        }
        Ok(())
    }

    /// Consul's `CheckType.Type` (the `Type` field of the check).
    pub fn kind(&self) -> &'static str {
        if !self.grpc.is_empty() && self.interval > 0 {
            "grpc"
        } else if !self.http.is_empty() && self.interval > 0 {
            "http"
        } else if self.ttl > 0 {
            "ttl"
        } else if !self.tcp.is_empty() && self.interval > 0 {
            "tcp"
        } else if self.is_alias() {
            "alias"
        } else if !self.docker_container_id.is_empty() && self.interval > 0 {
            "docker"
        } else if self.is_script() && self.interval > 0 {
            "script"
        } else {
            ""
        }
    }

    /// Script and Docker checks run commands, which a dev agent refuses for remote registrations.
    pub(crate) fn runs_scripts(&self) -> bool {
        self.is_script() || !self.docker_container_id.is_empty()
    }
}

/// A service registration (Consul's `ServiceDefinition`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceDefinition {
    /// `ID` (defaults to the name).
    pub id: String,
    /// `Name`
    pub name: String,
    /// `Tags`
    pub tags: Vec<String>,
    /// `Address`
    pub address: String,
    /// `TaggedAddresses`
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// `Meta`
    pub meta: Option<BTreeMap<String, String>>,
    /// `Port`
    pub port: i64,
    /// `Weights` as given.
    pub weights: Option<Weights>,
    /// `EnableTagOverride`
    pub enable_tag_override: bool,
    /// `Check`, when not all-zero.
    pub check: Option<CheckDefinition>,
    /// `Checks`
    pub checks: Vec<CheckDefinition>,
}

/// A rejected registration: status and Consul's body text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct Rejection {
    /// HTTP status (400 or 500).
    pub status: u16,
    /// Plain-text body.
    pub message: String,
}

impl Rejection {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Rejection {
            status: 400,
            message: message.into(),
        }
    }
}

impl ServiceDefinition {
    /// Every check, `Check` first, in the order Consul numbers them.
    pub fn all_checks(&self) -> Vec<&CheckDefinition> {
        self.check.iter().chain(self.checks.iter()).collect()
    }

    /// The agent endpoint's validation, in Consul 1.8's order (ACL checks come after).
    pub(crate) fn validate(&self, weights_supported: bool) -> Result<(), Rejection> {
        if self.name.is_empty() {
            return Err(Rejection::bad_request("Missing service name"));
        }
        if matches!(self.address.as_str(), "0.0.0.0" | "::" | "[::]") {
            return Err(Rejection::bad_request("Invalid service address"));
        }
        if weights_supported && let Some(w) = &self.weights {
            validate_weights(w)
                .map_err(|e| Rejection::bad_request(format!("Invalid Weights: {e}")))?;
        }
        if let Some(meta) = &self.meta {
            validate_meta(meta)
                .map_err(|e| Rejection::bad_request(format!("Invalid Service Meta: {e}")))?;
        }
        for check in self.all_checks() {
            check
                .validate()
                .map_err(|e| Rejection::bad_request(format!("Invalid check: {e}")))?;
        }
        for check in self.all_checks() {
            if !check.status.is_empty() && CheckStatus::parse(&check.status).is_none() {
                return Err(Rejection::bad_request(
                    "Status for checks must 'passing', 'warning', 'critical'",
                ));
            }
        }
        Ok(())
    }
}

fn validate_weights(w: &Weights) -> Result<(), String> {
    if w.passing < 1 {
        return Err("Passing must be greater than 0".into());
    }
    if w.warning < 0 {
        return Err("Warning must be greater or equal than 0".into());
    }
    if w.passing > 65535 || w.warning > 65535 {
        return Err("DNS Weight must be between 0 and 65535".into());
    }
    Ok(())
}

fn validate_meta(meta: &BTreeMap<String, String>) -> Result<(), String> {
    if meta.len() > 64 {
        return Err("Node metadata cannot contain more than 64 key/value pairs".into());
    }
    for (key, value) in meta {
        validate_meta_pair(key, value)
            .map_err(|e| format!("Couldn't load metadata pair ('{key}', '{value}'): {e}"))?;
    }
    Ok(())
}

fn validate_meta_pair(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("Key cannot be blank".into());
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("Key contains invalid characters".into());
    }
    if key.len() > 128 {
        return Err("Key is too long (limit: 128 characters)".into());
    }
    if key.starts_with("consul-") {
        return Err("Key prefix 'consul-' is reserved for internal use".into());
    }
    if value.len() > 512 {
        return Err("Value is too long (limit: 512 characters)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_validation_texts_match_consul() {
        let both = CheckDefinition {
            ttl: 1,
            interval: 1,
            ..Default::default()
        };
        assert_eq!(
            both.validate().unwrap_err(),
            "Interval and TTL cannot both be specified"
        );
        let tcp = CheckDefinition {
            tcp: "x:1".into(),
            ..Default::default()
        };
        assert_eq!(
            tcp.validate().unwrap_err(),
            "Interval must be > 0 for Script, HTTP, or TCP checks"
        );
        let none = CheckDefinition {
            notes: "n".into(),
            ..Default::default()
        };
        assert_eq!(
            none.validate().unwrap_err(),
            "TTL must be > 0 for TTL checks"
        );
        assert_eq!(
            CheckDefinition {
                ttl: 5,
                ..Default::default()
            }
            .kind(),
            "ttl"
        );
    }

    #[test]
    fn meta_and_weights_are_validated_in_order() {
        let mut def = ServiceDefinition {
            name: "x".into(),
            ..Default::default()
        };
        def.weights = Some(Weights {
            passing: 0,
            warning: 1,
        });
        def.meta = Some([("bad key!".to_string(), "x".to_string())].into());
        assert_eq!(
            def.validate(true).unwrap_err().message,
            "Invalid Weights: Passing must be greater than 0"
        );
        assert_eq!(
            def.validate(false).unwrap_err().message,
            "Invalid Service Meta: Couldn't load metadata pair ('bad key!', 'x'): Key contains invalid characters"
        );
    }
}
