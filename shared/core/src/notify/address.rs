//! Which webhook URLs and addresses a tenant may make the vault reach. The URL is checked when it is
//! registered; every address its host resolves to is checked again at connect time (the sender's job), so a
//! name that later resolves elsewhere (DNS rebinding) is still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `allow_loopback` is the development flag VAULT_ALLOW_PRIVATE_WEBHOOK_URLS: loopback addresses (and plain
/// http to them) become reachable, so `ledgix dev` users can receive webhooks locally. Link-local, metadata
/// and private addresses stay refused even then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UrlPolicy {
    pub allow_loopback: bool,
}

/// Check a URL without resolving it: https (http only to a loopback host under the development flag), no
/// credentials, a host, and, if the host is an IP literal, an allowed address.
pub fn check_url(raw: &str, policy: UrlPolicy) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not allowed".into());
    }
    let host = url.host().ok_or("the URL has no host")?;
    let literal = match host {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    };
    if let Some(ip) = literal {
        check_address(ip, policy)?;
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if policy.allow_loopback && is_loopback_host(&url, literal) => Ok(url),
        _ => Err("the URL must use https".into()),
    }
}

fn is_loopback_host(url: &url::Url, literal: Option<IpAddr>) -> bool {
    match literal {
        Some(ip) => canonical(ip).is_loopback(),
        None => url.host_str() == Some("localhost"),
    }
}

/// Refuse an address a tenant must not reach: loopback (unless allowed), private, link-local (which holds the
/// instance metadata address 169.254.169.254), unspecified, multicast, broadcast, shared, documentation and
/// other reserved ranges. IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
pub fn check_address(ip: IpAddr, policy: UrlPolicy) -> Result<(), String> {
    let ip = canonical(ip);
    let refused = |what: &str| Err(format!("{ip} is a {what} address"));
    if ip.is_loopback() {
        return if policy.allow_loopback {
            Ok(())
        } else {
            refused("loopback")
        };
    }
    match ip {
        IpAddr::V4(v4) => check_v4(v4).map_or(Ok(()), refused),
        IpAddr::V6(v6) => check_v6(v6).map_or(Ok(()), refused),
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn check_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_link_local() {
        Some("link-local (metadata)")
    } else if ip.is_private() {
        Some("private")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else if (a, b, c) == (192, 0, 0)
        || (a, b, c) == (192, 0, 2)
        || (a, b, c) == (198, 51, 100)
        || (a, b, c) == (203, 0, 113)
        || (a == 198 && (b == 18 || b == 19))
    {
        Some("special-purpose")
    } else {
        None
    }
}

fn check_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        Some("unspecified")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if first & 0xfe00 == 0xfc00 {
        Some("private (unique local)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
        Some("metadata")
    } else if first == 0x2001 && ip.segments()[1] == 0xdb8 {
        Some("documentation")
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        // NAT64 embeds an IPv4 address: judged as that address.
        let [.., a, b] = ip.segments();
        let v4 = Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8);
        check_v4(v4).or(v4.is_loopback().then_some("loopback (NAT64)"))
    } else if ip.to_ipv4().is_some() && ip.to_ipv4_mapped().is_none() {
        Some("IPv4-compatible (deprecated)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlPolicy = UrlPolicy {
        allow_loopback: false,
    };
    const DEV: UrlPolicy = UrlPolicy {
        allow_loopback: true,
    };

    #[test]
    fn public_addresses_pass_and_every_internal_range_is_refused() {
        for ok in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert_eq!(check_address(ok.parse().unwrap(), STRICT), Ok(()), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "10.0.0.5",
            "172.16.3.4",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "fe80::1",
            "fd00::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "192.0.2.1",
        ] {
            assert!(
                check_address(bad.parse().unwrap(), STRICT).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_development_flag_allows_loopback_only() {
        assert_eq!(check_address("127.0.0.1".parse().unwrap(), DEV), Ok(()));
        assert_eq!(check_address("::1".parse().unwrap(), DEV), Ok(()));
        for still_bad in [
            "169.254.169.254",
            "10.0.0.1",
            "192.168.0.1",
            "fd00:ec2::254",
        ] {
            assert!(
                check_address(still_bad.parse().unwrap(), DEV).is_err(),
                "{still_bad}"
            );
        }
        assert!(check_url("http://127.0.0.1:9000/hook", DEV).is_ok());
        assert!(check_url("http://localhost:9000/hook", DEV).is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook", STRICT).is_err());
        assert!(
            check_url("http://hooks.example.com/", DEV).is_err(),
            "http stays loopback-only"
        );
        assert!(check_url("http://169.254.169.254/latest/meta-data", DEV).is_err());
    }

    #[test]
    fn urls_need_https_a_host_and_no_credentials() {
        assert!(check_url("https://hooks.example.com/ledgix", STRICT).is_ok());
        for bad in [
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "not a url",
            "https://[::1]/",
            "https://10.0.0.1/",
            "https://169.254.169.254/",
            "https://0x7f000001/",
            "https://2130706433/",
        ] {
            assert!(check_url(bad, STRICT).is_err(), "{bad}");
        }
    }
}
