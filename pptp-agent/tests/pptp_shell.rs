//! The tokio shell over real loopback TCP: our client places a call on our server,
//! both see it come up, the client clears it and the server stops the connection.

use std::time::Duration;

use pptp_agent::pptp::call::OutgoingCallParams;
use pptp_agent::pptp::control::{CloseReason, ControlConfig, ControlConnection, Event, Roles};
use pptp_agent::pptp::message::StopReason;
use pptp_agent::pptp::shell::{Command, drive};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("event in time")
        .expect("shell alive")
}

#[tokio::test]
async fn call_over_loopback_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (server_log, mut server_events) = mpsc::unbounded_channel();
    let (client_log, mut client_events) = mpsc::unbounded_channel();
    let (server_cmd, server_rx) = mpsc::channel::<Command<_>>(4);
    let (client_cmd, client_rx) = mpsc::channel::<Command<_>>(4);

    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let conn = ControlConnection::answer(ControlConfig::default(), std::time::Instant::now());
        drive(stream, conn, server_rx, move |conn, e, now| {
            if let Event::CallRequested { local_call_id, .. } = e {
                conn.accept_call(local_call_id, now).unwrap();
            }
            server_log.send(e).unwrap();
        })
        .await
    });
    let client = tokio::spawn(async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        let config = ControlConfig {
            roles: Roles::Pns,
            ..ControlConfig::default()
        };
        let conn = ControlConnection::originate(config, std::time::Instant::now());
        drive(stream, conn, client_rx, move |_, e, _| {
            client_log.send(e).unwrap();
        })
        .await
    });

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
    let (log, mut events) = mpsc::unbounded_channel();
    let (_cmd, rx) = mpsc::channel::<Command<_>>(1);
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let conn = ControlConnection::answer(ControlConfig::default(), std::time::Instant::now());
        drive(stream, conn, rx, move |_, e, _| log.send(e).unwrap()).await
    });
    drop(TcpStream::connect(addr).await.unwrap());
    let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e, Event::Closed(CloseReason::PeerClosed));
    server.await.unwrap();
}
