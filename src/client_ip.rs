//! Which address a request comes from, for the per-address limits.
//!
//! The peer address of the TCP connection, unless that peer is one of
//! `TRUSTED_PROXIES`: then `X-Forwarded-For` is read from the right (the entry the
//! nearest proxy appended) and the first address that is not itself a trusted proxy is
//! the client. A header from an untrusted peer is ignored: anyone can send one.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Parses `TRUSTED_PROXIES`: a comma-separated list of addresses and CIDR blocks.
pub fn parse_trusted(v: &str) -> Result<Vec<IpNet>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))
        })
        .collect()
}

/// The client's address, as the limits count it.
pub fn resolve(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| canonical(p.ip()));
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    // Every X-Forwarded-For header, in order, as one list.
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbage: stop at the last address a trusted proxy vouched for.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`,
/// `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    hop.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The key per-address limits count under: an IPv4 address, or the /64 an IPv6 address
/// belongs to (one subscriber usually holds a whole /64, so counting single IPv6
/// addresses would let one client be 2^64 clients).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(s.parse().unwrap(), 1234))
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let trusted = parse_trusted("10.0.0.0/8, 127.0.0.1").unwrap();
        let h = headers(&["203.0.113.7"]);
        assert_eq!(
            resolve(peer("10.1.2.3"), &h, &trusted).to_string(),
            "203.0.113.7"
        );
        assert_eq!(
            resolve(peer("127.0.0.1"), &h, &trusted).to_string(),
            "203.0.113.7"
        );
        assert_eq!(
            resolve(peer("192.0.2.1"), &h, &trusted).to_string(),
            "192.0.2.1"
        );
        assert_eq!(resolve(peer("10.1.2.3"), &h, &[]).to_string(), "10.1.2.3");
    }

    #[test]
    fn a_forged_leftmost_entry_does_not_win() {
        let trusted = parse_trusted("10.0.0.0/8").unwrap();
        // The client sent "1.1.1.1" itself; the proxy appended the real address.
        let h = headers(&["1.1.1.1, 198.51.100.9", "10.0.0.2"]);
        assert_eq!(
            resolve(peer("10.0.0.1"), &h, &trusted).to_string(),
            "198.51.100.9"
        );
        // Garbage stops the walk at the last vouched-for address.
        let h = headers(&["nonsense, 10.0.0.5"]);
        assert_eq!(
            resolve(peer("10.0.0.1"), &h, &trusted).to_string(),
            "10.0.0.5"
        );
        let h = headers(&["[2001:db8::1]:443"]);
        assert_eq!(
            resolve(peer("10.0.0.1"), &h, &trusted).to_string(),
            "2001:db8::1"
        );
    }

    #[test]
    fn trusted_proxies_parse_or_name_the_bad_entry() {
        assert_eq!(parse_trusted("").unwrap(), vec![]);
        assert_eq!(parse_trusted("::1, 192.168.0.0/16").unwrap().len(), 2);
        assert!(
            parse_trusted("10.0.0.0/8, proxy.local")
                .unwrap_err()
                .contains("proxy.local")
        );
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a = limit_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = limit_key("2001:db8:1:2:bbbb::2".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(
            resolve(
                Some("[::ffff:192.0.2.5]:80".parse().unwrap()),
                &HeaderMap::new(),
                &[]
            )
            .to_string(),
            "192.0.2.5"
        );
    }
}
