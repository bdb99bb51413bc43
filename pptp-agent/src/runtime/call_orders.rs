//! The calls one control connection of ours is to place ([`CallOrders`]): the load
//! generator's PACs place many Incoming-Call-Requests on one connection, ordered one
//! at a time as its set-up window allows; `dial` and demand-dial interfaces place
//! one. `client`'s `carry_calls` runs the connection; this keeps
//! which calls are ordered, placed and up, and when the connection is done.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Instant,
};

use crate::pptp::{
    call::{IncomingCallParams, OutgoingCallParams},
    call_id::SharedCallIds,
    control::ControlConnection,
    message::StopReason,
};

use super::hub::{ControlCommand, SessionNotify};

/// Which call to place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallKind {
    /// Outgoing-Call-Request: we are the PNS (a voluntary client).
    #[default]
    Outgoing,
    /// Incoming-Call-Request: we are the PAC (an ISP's access switch).
    Incoming,
}

/// The calls one control connection is to place, shared between its task
/// (`carry_calls`) and whoever orders them (through
/// the commands [`CallOrders::order`] and [`CallOrders::last`] make, sent to the
/// connection). A call's [`SessionNotify`] goes to the hub with the call once it
/// is up; a call that ends before that, or never gets placed, drops it (its owner
/// sees the sender side of its channel close). Bounded by the Call IDs: a call
/// that finds none is not placed.
#[derive(Clone)]
pub struct CallOrders(Arc<Mutex<OrderBook>>);

struct OrderBook {
    kind: CallKind,
    /// Ordered, not placed yet (the connection is not established).
    queued: Vec<Option<SessionNotify>>,
    /// Placed and not up yet, by our Call ID.
    placed: HashMap<u16, Option<SessionNotify>>,
    /// No more orders come: the connection stops once its last call is down.
    closed: bool,
    /// Calls that came up.
    came_up: u32,
}

impl CallOrders {
    /// Orders for calls of `kind`.
    pub fn new(kind: CallKind) -> Self {
        Self(Arc::new(Mutex::new(OrderBook {
            kind,
            queued: Vec::new(),
            placed: HashMap::new(),
            closed: false,
            came_up: 0,
        })))
    }

    /// Exactly one call, its events to `notify`: the connection stops once it is
    /// down.
    pub fn one(kind: CallKind, notify: Option<SessionNotify>) -> Self {
        let orders = Self::new(kind);
        {
            let mut book = orders.book();
            book.queued.push(notify);
            book.closed = true;
        }
        orders
    }

    fn book(&self) -> MutexGuard<'_, OrderBook> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls that came up so far.
    pub fn came_up(&self) -> u32 {
        self.book().came_up
    }

    /// A command for the connection: place one more call, its session's events
    /// going to `notify`.
    pub fn order(&self, notify: SessionNotify) -> ControlCommand {
        let orders = self.clone();
        Box::new(move |conn, now| {
            orders.book().queued.push(Some(notify));
            orders.place_queued(conn, now);
        })
    }

    /// A command for the connection: no more calls are ordered; it stops once its
    /// last call is down.
    pub fn last(&self) -> ControlCommand {
        let orders = self.clone();
        Box::new(move |conn, now| {
            orders.book().closed = true;
            orders.stop_if_done(conn, now);
        })
    }

    /// Places every queued call, once the connection is established (call it on
    /// [`Event::Established`](crate::pptp::control::Event::Established)).
    pub fn place_queued(&self, conn: &mut ControlConnection<SharedCallIds>, now: Instant) {
        if !conn.is_established() {
            return;
        }
        let (kind, queued) = {
            let mut book = self.book();
            (book.kind, std::mem::take(&mut book.queued))
        };
        for notify in queued {
            let placed = match kind {
                CallKind::Outgoing => conn.place_outgoing_call(&OutgoingCallParams::default(), now),
                CallKind::Incoming => conn.place_incoming_call(&IncomingCallParams::default(), now),
            };
            match placed {
                Ok(id) => {
                    self.book().placed.insert(id, notify);
                }
                // Its notify is dropped: its owner sees the call end unplaced.
                Err(e) => tracing::error!(error = %e, "cannot place the call"),
            }
        }
        self.stop_if_done(conn, now);
    }

    /// Call `local_call_id` is up: its notify, to hand to the hub with it; `None`
    /// for a call we did not place.
    pub fn up(&self, local_call_id: u16) -> Option<Option<SessionNotify>> {
        let mut book = self.book();
        let notify = book.placed.remove(&local_call_id)?;
        book.came_up += 1;
        Some(notify)
    }

    /// Call `local_call_id` is down (a call that never came up drops its notify);
    /// stops the connection if it was the last and no more are ordered.
    pub fn down(
        &self,
        conn: &mut ControlConnection<SharedCallIds>,
        local_call_id: u16,
        now: Instant,
    ) {
        self.book().placed.remove(&local_call_id);
        self.stop_if_done(conn, now);
    }

    /// The connection is gone: whatever was never placed or never came up ends
    /// with it.
    pub fn abandon(&self) {
        let mut book = self.book();
        book.queued.clear();
        book.placed.clear();
    }

    fn stop_if_done(&self, conn: &mut ControlConnection<SharedCallIds>, now: Instant) {
        let done = {
            let book = self.book();
            book.closed && book.queued.is_empty()
        };
        if done && conn.call_count() == 0 {
            conn.stop(StopReason::None, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{TryRecvError, channel};

    use super::*;
    use crate::pptp::control::{ControlConfig, Event};
    use crate::pptp::message::{GeneralError, Message};

    /// Our PAC (with its orders) and a concentrator answering, joined in memory.
    struct Line {
        pac: ControlConnection<SharedCallIds>,
        pns: ControlConnection<SharedCallIds>,
        orders: CallOrders,
        now: Instant,
        /// Every message the PAC sent.
        pac_sent: Vec<Message>,
        /// Calls whose notify went to the hub, by our Call ID.
        handed: HashMap<u16, Option<SessionNotify>>,
    }

    impl Line {
        fn new() -> Self {
            let now = Instant::now();
            Self {
                pac: ControlConnection::originate_with_pool(
                    ControlConfig::default(),
                    SharedCallIds::default(),
                    now,
                ),
                pns: ControlConnection::answer_with_pool(
                    ControlConfig::default(),
                    SharedCallIds::default(),
                    now,
                ),
                orders: CallOrders::new(CallKind::Incoming),
                now,
                pac_sent: Vec::new(),
                handed: HashMap::new(),
            }
        }

        /// Moves bytes both ways until quiet; the PAC's events go to its orders
        /// as `carry_calls` hands them on; the concentrator accepts every call and
        /// its events are returned.
        fn drive(&mut self) -> Vec<Event> {
            let mut pns_events = Vec::new();
            loop {
                let mut moved = false;
                while let Some(e) = self.pac.poll_event() {
                    match e {
                        Event::Established(_) => self.orders.place_queued(&mut self.pac, self.now),
                        Event::CallUp(info) => {
                            let notify = self.orders.up(info.local_call_id).expect("ours");
                            self.handed.insert(info.local_call_id, notify);
                        }
                        Event::CallDown { local_call_id, .. } => {
                            self.handed.remove(&local_call_id);
                            self.orders.down(&mut self.pac, local_call_id, self.now);
                        }
                        _ => {}
                    }
                    moved = true;
                }
                while let Some(e) = self.pns.poll_event() {
                    if let Event::CallRequested { local_call_id, .. } = &e {
                        self.pns.accept_call(*local_call_id, self.now).unwrap();
                    }
                    pns_events.push(e);
                    moved = true;
                }
                while let Some(b) = self.pac.poll_transmit() {
                    self.pac_sent.push(Message::parse(&b).unwrap());
                    self.pns.handle_input(&b, self.now);
                    moved = true;
                }
                while let Some(b) = self.pns.poll_transmit() {
                    self.pac.handle_input(&b, self.now);
                    moved = true;
                }
                if !moved {
                    return pns_events;
                }
            }
        }

        fn run(&mut self, command: ControlCommand) {
            command(&mut self.pac, self.now);
        }

        fn stops_sent(&self) -> usize {
            self.pac_sent
                .iter()
                .filter(|m| matches!(m, Message::StopControlConnectionRequest(_)))
                .count()
        }
    }

    /// A notify whose receiver tells whether it was dropped.
    fn notify() -> (SessionNotify, std::sync::mpsc::Receiver<()>) {
        let (tx, rx) = channel();
        (
            Box::new(move |_| {
                let _ = tx.send(());
            }),
            rx,
        )
    }

    #[test]
    fn calls_ordered_before_and_after_the_handshake_all_come_up_on_one_connection() {
        let mut line = Line::new();
        // Ordered while the handshake is under way: held until it completes.
        let mut watchers = Vec::new();
        for _ in 0..200 {
            let (n, rx) = notify();
            watchers.push(rx);
            line.run(line.orders.order(n));
        }
        assert_eq!(line.pac.call_count(), 0);
        line.drive();
        for _ in 0..300 {
            let (n, rx) = notify();
            watchers.push(rx);
            line.run(line.orders.order(n));
        }
        line.drive();
        assert_eq!(line.orders.came_up(), 500);
        assert_eq!(line.handed.len(), 500);
        assert!(line.handed.values().all(Option::is_some));
        let requests = line
            .pac_sent
            .iter()
            .filter(|m| matches!(m, Message::IncomingCallRequest(_)))
            .count();
        assert_eq!(requests, 500);
        assert_eq!(line.pns.call_count(), 500);
        // Every notify is alive: with the hub, none dropped.
        assert!(
            watchers
                .iter()
                .all(|rx| rx.try_recv() == Err(TryRecvError::Empty))
        );
    }

    #[test]
    fn the_connection_stops_after_its_last_call_once_no_more_are_ordered() {
        let mut line = Line::new();
        for _ in 0..3 {
            line.run(line.orders.order(notify().0));
        }
        line.drive();
        line.run(line.orders.last());
        line.drive();
        assert_eq!(line.pac.call_count(), 3);
        let mut ids: Vec<u16> = line.handed.keys().copied().collect();
        ids.sort();
        // Two calls go; the third and the connection stay.
        for &id in &ids[..2] {
            line.pac.clear_call(id, line.now).unwrap();
            line.drive();
        }
        assert_eq!(line.pac.call_count(), 1);
        assert_eq!(line.pns.call_count(), 1);
        assert_eq!(line.stops_sent(), 0);
        assert!(line.pac.is_established());
        // The last one ends the connection.
        line.pac.clear_call(ids[2], line.now).unwrap();
        line.drive();
        assert_eq!(line.stops_sent(), 1);
        assert!(line.pac.is_closed());
    }

    #[test]
    fn a_refused_call_drops_its_notify_and_leaves_the_others_up() {
        let mut line = Line::new();
        line.drive();
        let (kept, kept_rx) = notify();
        line.run(line.orders.order(kept));
        line.drive();
        // The concentrator refuses the next call (it is full).
        let (refused, refused_rx) = notify();
        line.run(line.orders.order(refused));
        while let Some(b) = line.pac.poll_transmit() {
            line.pns.handle_input(&b, line.now);
        }
        while let Some(e) = line.pns.poll_event() {
            if let Event::CallRequested { local_call_id, .. } = e {
                line.pns
                    .refuse_call(local_call_id, GeneralError::NoResource)
                    .unwrap();
            }
        }
        line.drive();
        assert_eq!(refused_rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(kept_rx.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(line.orders.came_up(), 1);
        assert_eq!(line.pac.call_count(), 1);
        assert!(line.pac.is_established());
    }
}
