//! The client's address, for per-address limits: the TCP peer, or what
//! trusted reverse proxies recorded.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::app::App;
use crate::config::Cidr;
use crate::error::Error;

/// The client's address: the TCP peer, or, when the peer is a trusted proxy
/// (`http.trusted_proxies`), what the proxies recorded in
/// `http.client_ip_header` (see [`client_addr`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<App> for ClientIp {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<ClientIp, Error> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let http = &app.config.http;
        if http.client_ip_header.is_empty() {
            return Ok(ClientIp(peer));
        }
        let lines = parts
            .headers
            .get_all(http.client_ip_header.as_str())
            .iter()
            .map(|v| v.as_bytes());
        Ok(ClientIp(client_addr(peer, lines, &http.trusted_proxies)))
    }
}

/// The client's address from the TCP `peer` and the lines of an
/// X-Forwarded-For style header (comma-separated addresses, each proxy
/// appending the address it received the request from).
///
/// The header is believed only if `peer` is a trusted proxy. It is then read
/// from the right: each address that is a trusted proxy is a hop to look
/// past, the first that is not is the client. What lies to its left was
/// written by the client and is ignored. If every address is a trusted
/// proxy the left-most is the client; an entry that is not an address stops
/// the walk at the last address before it.
pub fn client_addr<'a>(
    peer: IpAddr,
    header_lines: impl DoubleEndedIterator<Item = &'a [u8]>,
    trusted: &[Cidr],
) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for line in header_lines.rev() {
        let Ok(line) = std::str::from_utf8(line) else {
            return client;
        };
        for entry in line.rsplit(',') {
            match forwarded_addr(entry) {
                Some(ip) => {
                    client = ip;
                    if !is_trusted(ip) {
                        return ip;
                    }
                }
                None => return client,
            }
        }
    }
    client
}

/// One entry of a forwarding header: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:443`.
fn forwarded_addr(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse().ok())
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter()
            .map(|n| Cidr::try_from(n.to_string()).unwrap())
            .collect()
    }

    fn addr(peer: &str, lines: &[&str], trusted: &[&str]) -> String {
        client_addr(
            peer.parse().unwrap(),
            lines.iter().map(|l| l.as_bytes()),
            &nets(trusted),
        )
        .to_string()
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client() {
        let proxies = ["127.0.0.1", "10.0.0.0/8"];
        // One proxy: it appended the address it saw; the rest is forged.
        assert_eq!(
            addr("127.0.0.1", &["1.1.1.1, 2.2.2.2, 203.0.113.9"], &proxies),
            "203.0.113.9"
        );
        // Two proxies, and the header split over two lines.
        assert_eq!(
            addr("10.0.0.2", &["6.6.6.6, 203.0.113.9", "10.1.1.1"], &proxies),
            "203.0.113.9"
        );
        // Ports and brackets as some proxies write them; mapped IPv4.
        assert_eq!(
            addr("::ffff:127.0.0.1", &["203.0.113.9:5555"], &proxies),
            "203.0.113.9"
        );
        assert_eq!(
            addr("127.0.0.1", &["[2001:db8::7]:443"], &proxies),
            "2001:db8::7"
        );
        assert_eq!(
            addr("127.0.0.1", &["[2001:db8::7]"], &proxies),
            "2001:db8::7"
        );
        // Only proxies: the left-most.
        assert_eq!(
            addr("127.0.0.1", &["10.9.9.9, 10.0.0.1"], &proxies),
            "10.9.9.9"
        );
        // No header: the peer.
        assert_eq!(addr("127.0.0.1", &[], &proxies), "127.0.0.1");
    }

    #[test]
    fn the_header_of_an_untrusted_peer_is_ignored() {
        assert_eq!(
            addr("198.51.100.1", &["203.0.113.9"], &["127.0.0.1"]),
            "198.51.100.1"
        );
        assert_eq!(addr("127.0.0.1", &["203.0.113.9"], &[]), "127.0.0.1");
        assert_eq!(
            addr("::ffff:198.51.100.1", &["203.0.113.9"], &["127.0.0.1"]),
            "198.51.100.1"
        );
    }

    #[test]
    fn garbage_stops_at_the_last_address_before_it() {
        let proxies = ["127.0.0.1", "10.0.0.0/8"];
        assert_eq!(
            addr("127.0.0.1", &["1.1.1.1, unknown, 10.0.0.5"], &proxies),
            "10.0.0.5"
        );
        assert_eq!(addr("127.0.0.1", &["nonsense"], &proxies), "127.0.0.1");
        assert_eq!(addr("127.0.0.1", &["1.1.1.1,"], &proxies), "127.0.0.1");
        assert_eq!(
            client_addr(
                "127.0.0.1".parse().unwrap(),
                [&b"\xff, 203.0.113.9"[..]].into_iter(),
                &nets(&proxies)
            )
            .to_string(),
            "127.0.0.1"
        );
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        assert!(Cidr::try_from("10.0.0.0/8".to_string()).is_ok());
        assert!(Cidr::try_from("10.1.2.3".to_string()).is_ok());
        assert!(Cidr::try_from("fd00::/8".to_string()).is_ok());
        assert!(Cidr::try_from("10.0.0.0/33".to_string()).is_err());
        assert!(Cidr::try_from("proxy.example".to_string()).is_err());
        let net = Cidr::try_from("10.1.2.3/8".to_string()).unwrap();
        assert!(net.contains("10.200.0.1".parse().unwrap()));
    }
}
