//! Interface specifications (`interfaces`) and the choice of the address a service advertises.
//!
//! The grammar and the choice follow ContainerPilot: all addresses of all interfaces are sorted
//! by interface name, then by address bytes (IPv4 as `::ffff:a.b.c.d`); each specification in
//! turn takes the first address it matches. The one difference is that interface names may
//! contain `-`, `.` and `@` (`br-1a2b`, `eth0.100`), which ContainerPilot could not reference.
//!
//! The host's addresses come through `InterfaceSource`, so tests feed fixed tables.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address of one network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceAddr {
    pub name: String,
    pub ip: IpAddr,
}

impl IfaceAddr {
    pub fn new(name: impl Into<String>, ip: IpAddr) -> Self {
        IfaceAddr {
            name: name.into(),
            ip: canonical(ip),
        }
    }
}

/// Where the host's interface addresses come from.
pub trait InterfaceSource: Send + Sync {
    /// Every address of every interface, up or down, loopback included.
    fn addresses(&self) -> Result<Vec<IfaceAddr>, String>;
}

/// The host's interfaces, read with `getifaddrs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemInterfaces;

impl InterfaceSource for SystemInterfaces {
    fn addresses(&self) -> Result<Vec<IfaceAddr>, String> {
        let list = nix::ifaddrs::getifaddrs()
            .map_err(|e| format!("cannot list network interfaces: {}", e.desc()))?;
        let mut out = Vec::new();
        for entry in list {
            let Some(address) = entry.address else {
                continue;
            };
            let ip = if let Some(v4) = address.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = address.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                continue; // link-layer and other families carry no IP
            };
            out.push(IfaceAddr::new(entry.interface_name, ip));
        }
        Ok(out)
    }
}

/// A fixed list of addresses, for tests and for callers that already know them.
#[derive(Clone, Debug, Default)]
pub struct StaticInterfaces(pub Vec<IfaceAddr>);

impl StaticInterfaces {
    /// From `(name, address)` pairs; panics on an unparsable address, so only for literals.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        StaticInterfaces(
            pairs
                .iter()
                .map(|(name, ip)| IfaceAddr::new(*name, ip.parse().expect("literal IP address")))
                .collect(),
        )
    }
}

impl InterfaceSource for StaticInterfaces {
    fn addresses(&self) -> Result<Vec<IfaceAddr>, String> {
        Ok(self.0.clone())
    }
}

/// One parsed interface specification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// `inet`: any non-loopback IPv4 address.
    Inet,
    /// `inet6`: any non-loopback IPv6 address.
    Inet6,
    /// `static:ADDR`: that address, whatever the interfaces.
    Static(IpAddr),
    /// `NAME`, `NAME:inet`, `NAME:inet6`: that interface's first IPv4 or IPv6 address.
    Named { name: String, ipv6: bool },
    /// `NAME[N]`: that interface's N-th address (0-based), IPv4 and IPv6 counted together.
    Indexed { name: String, index: usize },
    /// `a.b.c.d/p` or `x::/p`: the first address in that network.
    Network { network: IpAddr, prefix: u8 },
}

impl Spec {
    pub fn parse(text: &str) -> Result<Spec, String> {
        match text {
            "inet" => return Ok(Spec::Inet),
            "inet6" => return Ok(Spec::Inet6),
            _ => {}
        }
        if let Some(address) = text.strip_prefix("static:") {
            return address
                .parse::<IpAddr>()
                .map(|ip| Spec::Static(canonical(ip)))
                .map_err(|_| format!("{text:?} is not a valid static address"));
        }
        if let Some((address, prefix)) = text.split_once('/') {
            let network: IpAddr = address
                .parse()
                .map_err(|_| format!("{text:?} is not a valid CIDR network"))?;
            let max = if network.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|&p| p <= max && prefix.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("{text:?} is not a valid CIDR network"))?;
            return Ok(Spec::Network {
                network: mask(network, prefix),
                prefix,
            });
        }
        if text.parse::<IpAddr>().is_ok() {
            return Err(format!(
                "{text:?} is an address, not an interface; write \"static:{text}\" to advertise it"
            ));
        }
        if let Some(body) = text.strip_suffix(']')
            && let Some((name, index)) = body.split_once('[')
        {
            let index = index
                .parse::<usize>()
                .ok()
                .filter(|_| index.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("{text:?} has an invalid index (a number from 0)"))?;
            return Ok(Spec::Indexed {
                name: interface_name(name, text)?,
                index,
            });
        }
        if let Some((name, family)) = text.rsplit_once(':') {
            let ipv6 = match family {
                "inet" => false,
                "inet6" => true,
                _ => {
                    return Err(format!(
                        "{text:?} is not an interface specification (after ':' comes inet or inet6)"
                    ));
                }
            };
            return Ok(Spec::Named {
                name: interface_name(name, text)?,
                ipv6,
            });
        }
        Ok(Spec::Named {
            name: interface_name(text, text)?,
            ipv6: false,
        })
    }

    fn matches(&self, addr: &IfaceAddr, index_in_interface: usize) -> bool {
        match self {
            Spec::Inet => addr.ip.is_ipv4() && !addr.ip.is_loopback(),
            Spec::Inet6 => addr.ip.is_ipv6() && !addr.ip.is_loopback(),
            Spec::Static(_) => false,
            Spec::Named { name, ipv6 } => *name == addr.name && addr.ip.is_ipv6() == *ipv6,
            Spec::Indexed { name, index } => *name == addr.name && *index == index_in_interface,
            Spec::Network { network, prefix } => {
                network.is_ipv4() == addr.ip.is_ipv4() && mask(addr.ip, *prefix) == *network
            }
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Inet => f.write_str("inet"),
            Spec::Inet6 => f.write_str("inet6"),
            Spec::Static(ip) => write!(f, "static:{ip}"),
            Spec::Named { name, ipv6: false } => write!(f, "{name}:inet"),
            Spec::Named { name, ipv6: true } => write!(f, "{name}:inet6"),
            Spec::Indexed { name, index } => write!(f, "{name}[{index}]"),
            Spec::Network { network, prefix } => write!(f, "{network}/{prefix}"),
        }
    }
}

/// Interface names: letters, digits, `_`, and (unlike ContainerPilot) `-`, `.` and `@`.
fn interface_name(name: &str, spec: &str) -> Result<String, String> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
    {
        Ok(name.to_string())
    } else {
        Err(format!("{spec:?} is not an interface specification"))
    }
}

/// IPv4-mapped IPv6 addresses are IPv4 addresses, as Go treats them.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The address with all but the first `prefix` bits cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

/// The 16-byte form Go sorts by.
fn sort_key(ip: &IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Sorts addresses as ContainerPilot does: by interface name (bytes), then by address bytes.
pub fn sort(addrs: &mut [IfaceAddr]) {
    addrs.sort_by(|a, b| {
        a.name
            .as_bytes()
            .cmp(b.name.as_bytes())
            .then_with(|| sort_key(&a.ip).cmp(&sort_key(&b.ip)))
    });
}

/// The address the first matching specification picks, or `None` when none matches.
pub fn select(specs: &[Spec], addrs: &[IfaceAddr]) -> Option<IpAddr> {
    let mut sorted = addrs.to_vec();
    sort(&mut sorted);
    // Each address's position among its own interface's addresses, for `NAME[N]`.
    let mut indexed = Vec::with_capacity(sorted.len());
    for (i, addr) in sorted.iter().enumerate() {
        let index = if i > 0 && sorted[i - 1].name == addr.name {
            indexed
                .last()
                .map_or(0, |&(_, n): &(&IfaceAddr, usize)| n + 1)
        } else {
            0
        };
        indexed.push((addr, index));
    }
    for spec in specs {
        if let Spec::Static(ip) = spec {
            return Some(*ip);
        }
        if let Some((addr, _)) = indexed.iter().find(|(addr, i)| spec.matches(addr, *i)) {
            return Some(addr.ip);
        }
    }
    None
}

/// `name address` pairs for a message about what the host has.
pub fn describe(addrs: &[IfaceAddr]) -> String {
    let mut sorted = addrs.to_vec();
    sort(&mut sorted);
    if sorted.is_empty() {
        return "none".to_string();
    }
    sorted
        .iter()
        .map(|a| format!("{} {}", a.name, a.ip))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ContainerPilot's reference table (its unit test), given out of order.
    fn reference() -> Vec<IfaceAddr> {
        StaticInterfaces::from_pairs(&[
            ("lo", "127.0.0.1"),
            ("eth2", "fdc6:238c:c4bc::1"),
            ("eth0", "192.168.1.100"),
            ("lo", "::1"),
            ("eth1", "10.0.0.200"),
            ("eth0", "10.2.0.1"),
            ("eth2", "10.1.0.200"),
            ("eth1", "10.0.0.100"),
        ])
        .0
    }

    fn pick(specs: &[&str], addrs: &[IfaceAddr]) -> Option<String> {
        let specs: Vec<Spec> = specs.iter().map(|s| Spec::parse(s).unwrap()).collect();
        select(&specs, addrs).map(|ip| ip.to_string())
    }

    #[test]
    fn sorts_like_containerpilot() {
        let mut addrs = reference();
        sort(&mut addrs);
        let order: Vec<String> = addrs
            .iter()
            .map(|a| format!("{} {}", a.name, a.ip))
            .collect();
        assert_eq!(
            order,
            [
                "eth0 10.2.0.1",
                "eth0 192.168.1.100",
                "eth1 10.0.0.100",
                "eth1 10.0.0.200",
                "eth2 10.1.0.200",
                "eth2 fdc6:238c:c4bc::1",
                "lo ::1",
                "lo 127.0.0.1",
            ]
        );
    }

    #[test]
    fn selects_like_containerpilot() {
        let addrs = reference();
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["eth0[1]"], Some("192.168.1.100")),
            (&["eth0[2]"], None),
            (&["eth0:inet6"], None),
            (&["10.0.0.0/8"], Some("10.2.0.1")),
            (&["inet"], Some("10.2.0.1")),
            (&["inet6"], Some("fdc6:238c:c4bc::1")),
            (&["eth3", "10.0.0.0/16", "inet"], Some("10.0.0.100")),
            (&["eth1"], Some("10.0.0.100")),
            (&["eth2:inet6"], Some("fdc6:238c:c4bc::1")),
            (&["eth2[1]"], Some("fdc6:238c:c4bc::1")),
            (&["lo"], Some("127.0.0.1")),
            (&["lo:inet6"], Some("::1")),
            (&["lo[0]"], Some("::1")),
            (&["fd00::/8"], Some("fdc6:238c:c4bc::1")),
            (&["::/0"], Some("fdc6:238c:c4bc::1")),
            (&["127.0.0.0/8"], Some("127.0.0.1")),
            (&["static:192.0.2.1", "inet"], Some("192.0.2.1")),
            (&["eth0:inet", "static:192.0.2.1"], Some("10.2.0.1")),
            (&["eth9", "static:2001:db8::1"], Some("2001:db8::1")),
            (&["eth0:inet", "inet"], Some("10.2.0.1")),
        ];
        for (specs, want) in cases {
            assert_eq!(pick(specs, &addrs).as_deref(), *want, "{specs:?}");
        }
    }

    #[test]
    fn loopback_only_hosts_match_neither_inet_nor_inet6() {
        let addrs = StaticInterfaces::from_pairs(&[("lo", "127.0.0.1"), ("lo", "::1")]).0;
        assert_eq!(pick(&["inet"], &addrs), None);
        assert_eq!(pick(&["inet6"], &addrs), None);
        assert_eq!(pick(&["lo"], &addrs).as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn names_with_dashes_dots_and_at_signs() {
        let addrs = StaticInterfaces::from_pairs(&[
            ("br-1a2b", "172.18.0.1"),
            ("eth0.100", "10.100.0.5"),
            ("veth0@if5", "10.9.0.1"),
        ])
        .0;
        assert_eq!(pick(&["br-1a2b"], &addrs).as_deref(), Some("172.18.0.1"));
        assert_eq!(
            pick(&["eth0.100:inet"], &addrs).as_deref(),
            Some("10.100.0.5")
        );
        assert_eq!(pick(&["veth0@if5[0]"], &addrs).as_deref(), Some("10.9.0.1"));
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        assert_eq!(
            Spec::parse("static:::ffff:1.2.3.4"),
            Ok(Spec::Static("1.2.3.4".parse().unwrap()))
        );
        let addrs = vec![IfaceAddr::new("eth0", "::ffff:10.0.0.1".parse().unwrap())];
        assert_eq!(pick(&["inet"], &addrs).as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn parses_every_form() {
        let cases: &[(&str, Spec)] = &[
            ("inet", Spec::Inet),
            ("inet6", Spec::Inet6),
            (
                "eth0",
                Spec::Named {
                    name: "eth0".into(),
                    ipv6: false,
                },
            ),
            (
                "eth0:inet",
                Spec::Named {
                    name: "eth0".into(),
                    ipv6: false,
                },
            ),
            (
                "eth0:inet6",
                Spec::Named {
                    name: "eth0".into(),
                    ipv6: true,
                },
            ),
            (
                "eth0[1]",
                Spec::Indexed {
                    name: "eth0".into(),
                    index: 1,
                },
            ),
            (
                "10.1.2.3/8",
                Spec::Network {
                    network: "10.0.0.0".parse().unwrap(),
                    prefix: 8,
                },
            ),
            (
                "fd00::1/64",
                Spec::Network {
                    network: "fd00::".parse().unwrap(),
                    prefix: 64,
                },
            ),
            ("static:10.0.0.1", Spec::Static("10.0.0.1".parse().unwrap())),
        ];
        for (text, spec) in cases {
            assert_eq!(Spec::parse(text).as_ref(), Ok(spec), "{text}");
        }
    }

    #[test]
    fn rejects_what_cannot_be_an_interface() {
        let cases: &[(&str, &str)] = &[
            ("eth0:inet5", "after ':' comes inet or inet6"),
            ("eth0[-1]", "invalid index"),
            ("eth0[x]", "invalid index"),
            ("127.0.0.1", "write \"static:127.0.0.1\""),
            ("::1", "write \"static:::1\""),
            ("static:", "not a valid static address"),
            ("static:5", "not a valid static address"),
            ("10.0.0.0/33", "not a valid CIDR"),
            ("10.0.0/8", "not a valid CIDR"),
            ("", "not an interface specification"),
            ("eth 0", "not an interface specification"),
            (":inet", "not an interface specification"),
        ];
        for (text, message) in cases {
            let err = Spec::parse(text).unwrap_err();
            assert!(err.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn system_interfaces_include_loopback() {
        let addrs = SystemInterfaces.addresses().unwrap();
        assert!(addrs.iter().any(|a| a.ip.is_loopback()), "{addrs:?}");
    }
}
