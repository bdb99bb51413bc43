//! The machines' output queues (frames to send, events, notices): a queue that is
//! drained gives its buffer back. A link exchanges a few packets a minute once it is
//! up, and 50,000 links each kept room for the burst of their negotiation (about
//! 640 bytes a session in the concentrator's heap profile at 5,000 sessions).

use std::collections::VecDeque;

/// The front of `queue`; once it is empty, its memory is released.
pub(super) fn pop_or_release<T>(queue: &mut VecDeque<T>) -> Option<T> {
    let next = queue.pop_front();
    if next.is_none() && queue.capacity() > 0 {
        queue.shrink_to_fit();
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_queue_holds_no_memory() {
        let mut queue: VecDeque<Vec<u8>> = VecDeque::new();
        queue.extend([vec![1], vec![2], vec![3]]);
        assert_eq!(pop_or_release(&mut queue), Some(vec![1]));
        assert!(queue.capacity() >= 2, "kept while not empty");
        assert_eq!(pop_or_release(&mut queue), Some(vec![2]));
        assert_eq!(pop_or_release(&mut queue), Some(vec![3]));
        assert_eq!(pop_or_release(&mut queue), None);
        assert_eq!(queue.capacity(), 0);
        queue.push_back(vec![4]);
        assert_eq!(pop_or_release(&mut queue), Some(vec![4]));
    }
}
