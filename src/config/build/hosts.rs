//! The host's addresses, for the services and the telemetry listener that advertise one.

use std::net::IpAddr;

use crate::config::LoadContext;
use crate::config::interfaces::{self, IfaceAddr, Spec};

/// `interfaces` when not set: ContainerPilot's (its docs say `["eth0:inet"]`, its code does this).
pub const DEFAULT_INTERFACES: [&str; 2] = ["eth0:inet", "inet"];

/// The host's addresses, read once per load and only when a service needs them.
pub struct HostAddresses<'a> {
    ctx: &'a LoadContext,
    cached: Option<Result<Vec<IfaceAddr>, String>>,
}

impl<'a> HostAddresses<'a> {
    pub fn new(ctx: &'a LoadContext) -> Self {
        HostAddresses { ctx, cached: None }
    }

    /// The address to advertise for `specs` (as written in `interfaces`; the default when
    /// `None`), or why there is none.
    pub fn resolve(&mut self, specs: Option<&[String]>) -> Result<IpAddr, String> {
        let default = DEFAULT_INTERFACES.map(String::from);
        let specs = specs.unwrap_or(&default);
        let mut parsed = Vec::with_capacity(specs.len());
        let mut errors = Vec::new();
        for spec in specs {
            match Spec::parse(spec) {
                Ok(spec) => parsed.push(spec),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        if let [Spec::Static(ip), ..] = parsed.as_slice() {
            return Ok(*ip);
        }
        let addrs = self
            .cached
            .get_or_insert_with(|| self.ctx.interfaces.addresses())
            .as_ref()
            .map_err(|e| format!("cannot be resolved: {e}"))?;
        interfaces::select(&parsed, addrs).ok_or_else(|| {
            format!(
                "{:?} match no address of this host (it has: {})",
                specs,
                interfaces::describe(addrs)
            )
        })
    }
}
