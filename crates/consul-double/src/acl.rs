//! ACL token handling: where a request's token comes from and what it may do.
//!
//! Precedence is Consul's: a non-empty `?token=`, then `X-Consul-Token`, then
//! `Authorization: Bearer` (scheme case-insensitive). With ACLs on, an unknown token is refused
//! with 403 `ACL not found` everywhere but `/v1/status/*`; writes need a write token (403
//! `Permission denied`); reads without rights are filtered to nothing, except a single-key KV read
//! and `/v1/agent/self`, which Consul refuses outright.

use http::HeaderMap;

use crate::config::{AclConfig, TokenRights};
use crate::log::TokenSource;

/// Consul's body for an unknown token.
pub(crate) const ACL_NOT_FOUND: &str = "ACL not found";
/// Consul's body for a denied operation.
pub(crate) const PERMISSION_DENIED: &str = "Permission denied";

/// Finds the request's token, honouring Consul's precedence.
pub(crate) fn extract_token(
    query_token: Option<&str>,
    headers: &HeaderMap,
) -> (TokenSource, Option<String>) {
    if let Some(t) = query_token.filter(|t| !t.is_empty()) {
        return (TokenSource::Query, Some(t.to_string()));
    }
    if let Some(t) = headers
        .get("x-consul-token")
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
    {
        return (TokenSource::Header, Some(t.to_string()));
    }
    if let Some(auth) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let mut parts = auth.split_whitespace();
        if let (Some(scheme), Some(token)) = (parts.next(), parts.next())
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return (TokenSource::Bearer, Some(token.to_string()));
        }
    }
    (TokenSource::None, None)
}

/// What the request's token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// ACLs off, or a write token.
    Write,
    /// A read-only token.
    Read,
    /// Anonymous with ACLs on.
    None,
}

impl Access {
    pub(crate) fn can_read(self) -> bool {
        self != Access::None
    }

    pub(crate) fn can_write(self) -> bool {
        self == Access::Write
    }
}

/// Resolves a token; `Err` means 403 `ACL not found`.
pub(crate) fn resolve(acl: Option<&AclConfig>, token: Option<&str>) -> Result<Access, ()> {
    let Some(acl) = acl else {
        return Ok(Access::Write);
    };
    match token {
        None => Ok(Access::None),
        Some(t) => match acl.tokens.get(t) {
            Some(TokenRights::Write) => Ok(Access::Write),
            Some(TokenRights::Read) => Ok(Access::Read),
            None => Err(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn precedence_is_query_then_header_then_bearer() {
        let mut h = HeaderMap::new();
        h.insert("X-Consul-Token", HeaderValue::from_static("hdr"));
        h.insert("Authorization", HeaderValue::from_static("BEARER bt extra"));
        assert_eq!(
            extract_token(Some("q"), &h),
            (TokenSource::Query, Some("q".into()))
        );
        assert_eq!(
            extract_token(Some(""), &h),
            (TokenSource::Header, Some("hdr".into()))
        );
        h.remove("x-consul-token");
        assert_eq!(
            extract_token(None, &h),
            (TokenSource::Bearer, Some("bt".into()))
        );
        h.insert("Authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(extract_token(None, &h), (TokenSource::None, None));
    }

    #[test]
    fn resolution() {
        let acl = AclConfig::with_write_tokens(["w"]);
        assert_eq!(resolve(None, Some("anything")), Ok(Access::Write));
        assert_eq!(resolve(Some(&acl), Some("w")), Ok(Access::Write));
        assert_eq!(resolve(Some(&acl), None), Ok(Access::None));
        assert_eq!(resolve(Some(&acl), Some("x")), Err(()));
    }
}
