//! `[server] allow_cidrs`: which peers may use the HEC listener. A
//! connection from elsewhere is shut as soon as the listener hands it over
//! (after the TLS handshake, which actix completes first) and marked, so a
//! request already read from it is refused without being queued.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The peers allowed (empty: everyone).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowList(Vec<IpNet>);

/// Marks a connection from a peer the list does not allow.
#[derive(Debug, Clone, Copy)]
pub struct Denied;

impl AllowList {
    /// Allows `nets` (none: everyone).
    pub fn new(nets: Vec<IpNet>) -> AllowList {
        AllowList(nets)
    }

    /// Whether `addr` may connect. An IPv4 client on a dual-stack socket
    /// shows as `::ffff:a.b.c.d` and is matched as the IPv4 address.
    pub fn permits(&self, addr: IpAddr) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&addr))
    }

    /// Networks listed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether everyone is allowed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_rt::net::TcpStream>;

/// The TCP stream under what actix hands `on_connect` (plain or TLS).
fn tcp(io: &dyn std::any::Any) -> Option<&actix_rt::net::TcpStream> {
    if let Some(t) = io.downcast_ref::<actix_rt::net::TcpStream>() {
        return Some(t);
    }
    io.downcast_ref::<Tls>().map(|t| t.get_ref().0)
}

/// The peer of a new connection.
pub fn peer(io: &dyn std::any::Any) -> Option<SocketAddr> {
    tcp(io)?.peer_addr().ok()
}

/// Shuts both directions of the connection: the next read sees its end,
/// so actix drops it without reading a request.
pub fn shut(io: &dyn std::any::Any) {
    if let Some(t) = tcp(io) {
        let _ = rustix::net::shutdown(t, rustix::net::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(nets: &[&str]) -> AllowList {
        AllowList::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    #[test]
    fn an_empty_list_allows_everyone() {
        assert!(AllowList::default().permits("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn listed_networks_only_and_mapped_ipv4_matches_ipv4() {
        let l = list(&["173.245.48.0/20", "2400:cb00::/32", "127.0.0.1/32"]);
        let ok = |a: &str| l.permits(a.parse().unwrap());
        assert!(ok("173.245.63.255"));
        assert!(!ok("173.245.64.0"));
        assert!(ok("2400:cb00::1"));
        assert!(!ok("2400:cb01::1"));
        assert!(ok("::ffff:173.245.48.7"));
        assert!(ok("127.0.0.1"));
        assert!(!ok("::1"));
    }
}
