//! Routes and addresses through rtnetlink, for the TUN devices ([`super::tun`]) and
//! the demand-dial host routes ([`super::host_route`]).
//!
//! The hub adds and removes a route on every session up and down, inside the one
//! task that carries every session's packets: it must not wait there. iproute2's `ip`
//! as a subprocess (what this replaced) costs a fork and an exec, and blocks the hub
//! until `ip` exits. A request on a netlink socket is carried out by the kernel inside
//! the `sendmsg` call (`netlink_unicast_kernel` runs rtnetlink's handler in the
//! sender's context), so its acknowledgement is already queued when the call returns:
//! the socket is non-blocking, and an acknowledgement that is not there at once is an
//! error, never a wait.
//!
//! Messages come from `netlink-packet-route` and travel over `netlink-sys`'s socket
//! (the rust-netlink crates, which `tun-rs` already builds on): a synchronous
//! request/acknowledge is all we need, without `rtnetlink`'s connection task.

use std::{
    io,
    net::{IpAddr, Ipv4Addr},
    sync::atomic::{AtomicU32, Ordering},
};

use ipnet::Ipv4Net;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressMessage},
    route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
        RouteType,
    },
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// How the kernel reaches an address ([`Rtnl::route_to`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteTo {
    /// One of our own addresses.
    Local,
    /// Through device `oif`, via `gateway` or on-link.
    Via { gateway: Option<Ipv4Addr>, oif: u32 },
}

/// A NETLINK_ROUTE socket.
pub struct Rtnl {
    socket: Socket,
    seq: AtomicU32,
}

impl Rtnl {
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        socket.set_non_blocking(true)?;
        Ok(Self {
            socket,
            seq: AtomicU32::new(1),
        })
    }

    /// `ip route replace DST [via GATEWAY] dev OIF`.
    pub fn replace_route(
        &self,
        dst: Ipv4Net,
        oif: u32,
        gateway: Option<Ipv4Addr>,
    ) -> io::Result<()> {
        let message = RouteNetlinkMessage::NewRoute(route(dst, oif, gateway, false));
        self.request(message, NLM_F_CREATE | NLM_F_REPLACE)
            .map(drop)
    }

    /// `ip route del DST [via GATEWAY] dev OIF`.
    pub fn delete_route(
        &self,
        dst: Ipv4Net,
        oif: u32,
        gateway: Option<Ipv4Addr>,
    ) -> io::Result<()> {
        let message = RouteNetlinkMessage::DelRoute(route(dst, oif, gateway, true));
        self.request(message, 0).map(drop)
    }

    /// `ip addr replace LOCAL peer PEER/32 dev INDEX`.
    pub fn replace_peer_address(
        &self,
        index: u32,
        local: Ipv4Addr,
        peer: Ipv4Addr,
    ) -> io::Result<()> {
        let message = RouteNetlinkMessage::NewAddress(peer_address(index, local, peer));
        self.request(message, NLM_F_CREATE | NLM_F_REPLACE)
            .map(drop)
    }

    /// `ip addr del LOCAL peer PEER/32 dev INDEX`.
    pub fn delete_peer_address(
        &self,
        index: u32,
        local: Ipv4Addr,
        peer: Ipv4Addr,
    ) -> io::Result<()> {
        let message = RouteNetlinkMessage::DelAddress(peer_address(index, local, peer));
        self.request(message, 0).map(drop)
    }

    /// `ip route get DST`.
    pub fn route_to(&self, dst: Ipv4Addr) -> io::Result<RouteTo> {
        let mut query = RouteMessage::default();
        query.header.address_family = AddressFamily::Inet;
        query.header.destination_prefix_length = 32;
        query
            .attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
        match self.request(RouteNetlinkMessage::GetRoute(query), 0)? {
            Some(RouteNetlinkMessage::NewRoute(answer)) => read_route(&answer)
                .ok_or_else(|| io::Error::other(format!("no usable route to {dst}"))),
            _ => Err(io::Error::other(
                "rtnetlink answered a route query without a route",
            )),
        }
    }

    /// Sends `message` and reads its answer: `Ok(None)` for an acknowledgement,
    /// `Ok(Some(..))` for a message (a query's answer).
    fn request(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Option<RouteNetlinkMessage>> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0)?;
        let mut answer = None;
        let mut buf = Vec::with_capacity(16 * 1024);
        loop {
            buf.clear();
            // Already queued (see the module docs): EAGAIN here is an error.
            let n = self.socket.recv(&mut buf, libc::MSG_DONTWAIT)?;
            let mut at = 0;
            while at < n.min(buf.len()) {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[at..])
                    .map_err(|e| io::Error::other(format!("reading rtnetlink: {e}")))?;
                let len = reply.header.length as usize;
                at += len.max(16).next_multiple_of(4);
                if reply.header.sequence_number != seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    // The acknowledgement ends every request (NLM_F_ACK).
                    NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(answer),
                    NetlinkPayload::InnerMessage(m) => answer = Some(m),
                    _ => {}
                }
            }
        }
    }
}

/// A unicast route in the main table, as `ip route` writes one.
fn route(dst: Ipv4Net, oif: u32, gateway: Option<Ipv4Addr>, delete: bool) -> RouteMessage {
    let mut m = RouteMessage::default();
    let h = &mut m.header;
    h.address_family = AddressFamily::Inet;
    h.destination_prefix_length = dst.prefix_len();
    h.table = RouteHeader::RT_TABLE_MAIN;
    (h.protocol, h.scope, h.kind) = if delete {
        (
            RouteProtocol::Unspec,
            RouteScope::NoWhere,
            RouteType::Unspec,
        )
    } else if gateway.is_some() {
        (
            RouteProtocol::Boot,
            RouteScope::Universe,
            RouteType::Unicast,
        )
    } else {
        (RouteProtocol::Boot, RouteScope::Link, RouteType::Unicast)
    };
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet(
            dst.network(),
        )));
    if let Some(gw) = gateway {
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
    }
    m.attributes.push(RouteAttribute::Oif(oif));
    m
}

/// A point-to-point address (`local peer PEER/32`).
fn peer_address(index: u32, local: Ipv4Addr, peer: Ipv4Addr) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.prefix_len = 32;
    m.header.index = index;
    m.attributes
        .push(AddressAttribute::Local(IpAddr::V4(local)));
    m.attributes
        .push(AddressAttribute::Address(IpAddr::V4(peer)));
    m
}

/// What an answer to a route query says.
fn read_route(m: &RouteMessage) -> Option<RouteTo> {
    if m.header.kind == RouteType::Local {
        return Some(RouteTo::Local);
    }
    let mut gateway = None;
    let mut oif = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Gateway(RouteAddress::Inet(gw)) => gateway = Some(*gw),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    Some(RouteTo::Via { gateway, oif: oif? })
}

/// `a.b.c.d/n`, or one address as a /32 (what `ip route` takes).
pub fn parse_destination(s: &str) -> io::Result<Ipv4Net> {
    s.parse::<Ipv4Net>()
        .or_else(|_| s.parse::<Ipv4Addr>().map(Ipv4Net::from))
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{s:?} is not an IPv4 prefix"),
            )
        })
}

/// The name of interface `index`, for messages.
pub fn interface_name(index: u32) -> String {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: if_indextoname writes at most IF_NAMESIZE bytes, NUL included.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        return format!("#{index}");
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_written_as_ip_route_writes_them() {
        let r = route("192.0.2.128/25".parse().unwrap(), 7, None, false);
        assert_eq!(r.header.destination_prefix_length, 25);
        assert_eq!(r.header.table, RouteHeader::RT_TABLE_MAIN);
        assert_eq!(
            (r.header.protocol, r.header.scope, r.header.kind),
            (RouteProtocol::Boot, RouteScope::Link, RouteType::Unicast),
            "a device route is link-scoped"
        );
        assert_eq!(
            r.attributes,
            vec![
                RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(192, 0, 2, 128))),
                RouteAttribute::Oif(7),
            ]
        );
        let gw = Ipv4Addr::new(198, 51, 100, 254);
        let via = route("203.0.113.7/32".parse().unwrap(), 2, Some(gw), false);
        assert_eq!(via.header.scope, RouteScope::Universe);
        assert!(
            via.attributes
                .contains(&RouteAttribute::Gateway(RouteAddress::Inet(gw)))
        );
        let del = route("203.0.113.7/32".parse().unwrap(), 2, None, true);
        assert_eq!(del.header.scope, RouteScope::NoWhere);

        let a = peer_address(4, Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 9));
        assert_eq!((a.header.prefix_len, a.header.index), (32, 4));
        assert_eq!(
            a.attributes,
            vec![
                AddressAttribute::Local(IpAddr::from([192, 0, 2, 1])),
                AddressAttribute::Address(IpAddr::from([192, 0, 2, 9])),
            ]
        );
    }

    #[test]
    fn route_query_answers_are_read() {
        let mut answer = RouteMessage::default();
        answer.header.kind = RouteType::Unicast;
        answer.attributes = vec![
            RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(203, 0, 113, 7))),
            RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(198, 51, 100, 254))),
            RouteAttribute::Oif(3),
        ];
        assert_eq!(
            read_route(&answer),
            Some(RouteTo::Via {
                gateway: Some(Ipv4Addr::new(198, 51, 100, 254)),
                oif: 3
            })
        );
        answer.attributes.remove(1);
        assert_eq!(
            read_route(&answer),
            Some(RouteTo::Via {
                gateway: None,
                oif: 3
            }),
            "on-link"
        );
        answer.attributes.pop();
        assert_eq!(read_route(&answer), None, "no device");
        answer.header.kind = RouteType::Local;
        assert_eq!(read_route(&answer), Some(RouteTo::Local));
    }

    #[test]
    fn destinations_are_prefixes_or_addresses() {
        assert_eq!(
            parse_destination("192.0.2.10").unwrap(),
            "192.0.2.10/32".parse::<Ipv4Net>().unwrap()
        );
        assert_eq!(
            parse_destination("203.0.113.0/24").unwrap().prefix_len(),
            24
        );
        assert!(parse_destination("default").is_err());
    }

    /// Root only (the tests run as root in CI): a route query against the kernel of
    /// this namespace.
    #[test]
    fn the_kernel_answers_a_route_query() {
        let rtnl = Rtnl::open().expect("a NETLINK_ROUTE socket");
        assert_eq!(rtnl.route_to(Ipv4Addr::LOCALHOST).unwrap(), RouteTo::Local);
    }
}
