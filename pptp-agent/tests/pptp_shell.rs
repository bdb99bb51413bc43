//! The tokio shell over real loopback TCP: our client places a call on our server,
//! both see it come up, the client clears it and the server stops the connection;
//! a peer that stops reading is dropped within the write timeout; a call's reply
//! waits until the hub has acted on the call.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use pptp_agent::pptp::call::OutgoingCallParams;
use pptp_agent::pptp::call_id::CallIdAllocator;
use pptp_agent::pptp::control::{CloseReason, ControlConfig, ControlConnection, Event, Roles};
use pptp_agent::pptp::message::StopReason;
use pptp_agent::pptp::shell::{CallClears, Channels, Command, Pass, ShellLimits, drive};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

async fn next(rx: &mut mpsc::Receiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("event in time")
        .expect("shell alive")
}

/// Commands to one of the tests' connections.
type Commands = mpsc::Receiver<Command<CallIdAllocator>>;

/// Answers the first connection on `listener` with `limits`, telling `log` what the
/// owner's `on_event` passes on.
fn answer_one(
    listener: TcpListener,
    commands: Commands,
    log: mpsc::Sender<Event>,
    limits: ShellLimits,
    on_event: impl FnMut(&mut ControlConnection, Event, Instant) -> Option<Pass<Event>> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let conn = ControlConnection::answer(ControlConfig::default(), Instant::now());
        let clears = CallClears::default();
        let channels = Channels {
            commands,
            clears: &clears,
            out: &log,
        };
        drive(stream, conn, channels, limits, on_event).await
    })
}

/// Our client (PNS) connected to `addr`, passing every event on to `log`.
fn originate(addr: SocketAddr, commands: Commands, log: mpsc::Sender<Event>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        let config = ControlConfig {
            roles: Roles::Pns,
            ..ControlConfig::default()
        };
        let conn = ControlConnection::originate(config, Instant::now());
        let clears = CallClears::default();
        let channels = Channels {
            commands,
            clears: &clears,
            out: &log,
        };
        drive(stream, conn, channels, ShellLimits::default(), |_, e, _| {
            Some(Pass::on(e))
        })
        .await
    })
}

#[tokio::test]
async fn call_over_loopback_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (server_log, mut server_events) = mpsc::channel(16);
    let (client_log, mut client_events) = mpsc::channel(16);
    let (server_cmd, server_rx) = mpsc::channel::<Command<_>>(4);
    let (client_cmd, client_rx) = mpsc::channel::<Command<_>>(4);

    let server = answer_one(
        listener,
        server_rx,
        server_log,
        ShellLimits::default(),
        |conn, e, now| {
            if let Event::CallRequested { local_call_id, .. } = e {
                conn.accept_call(local_call_id, now).unwrap();
            }
            Some(Pass::on(e))
        },
    );
    let client = originate(addr, client_rx, client_log);

    assert!(matches!(
        next(&mut client_events).await,
        Event::Established(_)
    ));
    assert!(matches!(
        next(&mut server_events).await,
        Event::Established(_)
    ));

    client_cmd
        .send(Box::new(|c, now| {
            c.place_outgoing_call(&OutgoingCallParams::default(), now)
                .unwrap();
        }))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut server_events).await,
        Event::CallRequested { .. }
    ));
    let Event::CallUp(server_call) = next(&mut server_events).await else {
        panic!("server call not up")
    };
    let Event::CallUp(client_call) = next(&mut client_events).await else {
        panic!("client call not up")
    };
    assert_eq!(client_call.peer_call_id, Some(server_call.local_call_id));
    assert_eq!(server_call.peer_call_id, Some(client_call.local_call_id));

    let id = client_call.local_call_id;
    client_cmd
        .send(Box::new(move |c, now| c.clear_call(id, now).unwrap()))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut server_events).await,
        Event::CallDown { .. }
    ));
    assert!(matches!(
        next(&mut client_events).await,
        Event::CallDown { .. }
    ));

    server_cmd
        .send(Box::new(|c, now| {
            c.stop(StopReason::StopLocalShutdown, now)
        }))
        .await
        .unwrap();
    assert_eq!(
        next(&mut server_events).await,
        Event::Closed(CloseReason::Stopped)
    );
    assert_eq!(
        next(&mut client_events).await,
        Event::Closed(CloseReason::PeerStopped(StopReason::StopLocalShutdown))
    );
    server.await.unwrap();
    client.await.unwrap();
}

#[tokio::test]
async fn peer_closing_tcp_ends_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (log, mut events) = mpsc::channel(4);
    let (_cmd, rx) = mpsc::channel::<Command<_>>(1);
    let server = answer_one(listener, rx, log, ShellLimits::default(), |_, e, _| {
        Some(Pass::on(e))
    });
    drop(TcpStream::connect(addr).await.unwrap());
    let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e, Event::Closed(CloseReason::PeerClosed));
    server.await.unwrap();
}

/// A peer that connects, floods Echo-Requests and never reads a reply: once its
/// receive window and our send buffer are full, the replies queue up to the bound
/// and no byte leaves for the write timeout; the connection must then be gone,
/// while its timers and commands kept running.
#[tokio::test]
async fn a_peer_that_stops_reading_is_dropped_within_the_write_timeout() {
    use pptp_agent::pptp::message::{
        BearerCaps, EchoRequest, FramingCaps, Message, PROTOCOL_VERSION, Reserved16,
        StartControlConnectionRequest, Text,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (log, mut events) = mpsc::channel(16);
    let (cmd, rx) = mpsc::channel::<Command<_>>(1);
    let limits = ShellLimits {
        outbound_bytes: 16 * 1024,
        write_timeout: Duration::from_secs(1),
    };
    let server = answer_one(listener, rx, log, limits, |_, e, _| Some(Pass::on(e)));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let sccrq = Message::from(StartControlConnectionRequest {
        protocol_version: PROTOCOL_VERSION,
        reserved1: Reserved16,
        framing_capabilities: FramingCaps::ALL,
        bearer_capabilities: BearerCaps::ALL,
        maximum_channels: 1,
        firmware_revision: 1,
        host_name: Text::new("slow"),
        vendor_name: Text::new("reader"),
    })
    .to_bytes();
    let echo = Message::from(EchoRequest { identifier: 7 }).to_bytes();
    use tokio::io::AsyncWriteExt as _;
    stream.write_all(&sccrq).await.unwrap();
    let flood = async {
        // Bounded: 20 s or 2 million requests, whichever comes first.
        let mut chunk = Vec::new();
        for _ in 0..1000 {
            chunk.extend_from_slice(&echo);
        }
        for _ in 0..2000 {
            if stream.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), flood).await;
    // While the writes were stalled, a command was still carried out.
    let _ = cmd.try_send(Box::new(|_, _| {}));
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Some(Event::Closed(reason)) => return reason,
                Some(_) => {}
                None => panic!("the shell ended without a Closed event"),
            }
        }
    })
    .await
    .expect("the connection was dropped within the write timeout");
    assert_eq!(closed, CloseReason::PeerClosed);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the shell task ended")
        .unwrap();
}

/// The server passes its call on with [`Pass::then_write`]: its Outgoing-Call-Reply
/// reaches the client only once the receiver has acted (the hub installing the call
/// in the data plane), never before.
#[tokio::test]
async fn a_calls_reply_waits_until_the_receiver_has_acted() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (server_log, mut server_events) = mpsc::channel(16);
    let (client_log, mut client_events) = mpsc::channel(16);
    let (_server_cmd, server_rx) = mpsc::channel::<Command<_>>(4);
    let (client_cmd, client_rx) = mpsc::channel::<Command<_>>(4);
    let (acted, acted_on) = oneshot::channel();
    let mut acted_on = Some(acted_on);

    answer_one(
        listener,
        server_rx,
        server_log,
        ShellLimits::default(),
        move |conn, e, now| match e {
            Event::CallRequested { local_call_id, .. } => {
                conn.accept_call(local_call_id, now).unwrap();
                Some(Pass::on(e))
            }
            Event::CallUp(_) => Some(Pass::then_write(e, acted_on.take().unwrap())),
            e => Some(Pass::on(e)),
        },
    );
    originate(addr, client_rx, client_log);
    assert!(matches!(
        next(&mut client_events).await,
        Event::Established(_)
    ));
    assert!(matches!(
        next(&mut server_events).await,
        Event::Established(_)
    ));

    client_cmd
        .send(Box::new(|c, now| {
            c.place_outgoing_call(&OutgoingCallParams::default(), now)
                .unwrap();
        }))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut server_events).await,
        Event::CallRequested { .. }
    ));
    assert!(matches!(next(&mut server_events).await, Event::CallUp(_)));
    // The server is up on its side; its reply is held (the hold limit is 1 s).
    let early = tokio::time::timeout(Duration::from_millis(300), client_events.recv()).await;
    assert!(early.is_err(), "the reply overtook the receiver: {early:?}");
    acted.send(()).unwrap();
    assert!(matches!(next(&mut client_events).await, Event::CallUp(_)));
}
