//! One connection's outbound queue: the frames the shard hands its writer, and the order to
//! close. A bounded queue that costs almost nothing while empty, which is how most
//! connections spend their life: no slots are reserved up front, and a queue that grew for a
//! burst gives its room back once drained.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::shard::CloseCommand;

/// A drained queue keeps at most this many slots; a larger one is shrunk.
const KEEP_SLOTS: usize = 8;

struct State {
    frames: VecDeque<Utf8Bytes>,
    close: Option<CloseCommand>,
    sender_gone: bool,
    receiver_gone: bool,
}

struct Inner {
    state: Mutex<State>,
    ready: Notify,
    capacity: usize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, and every change leaves the state whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue holds its capacity: the reader is too slow.
    Full,
    /// The writer is gone.
    Gone,
}

/// The shard's end.
pub(crate) struct OutboxSender {
    inner: Arc<Inner>,
}

/// The writer's end.
pub(crate) struct OutboxReceiver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OutboxSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxSender").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for OutboxReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queued = self.inner.lock().frames.len();
        f.debug_struct("OutboxReceiver")
            .field("queued", &queued)
            .finish_non_exhaustive()
    }
}

/// A queue of at most `capacity` frames.
pub(crate) fn outbox(capacity: usize) -> (OutboxSender, OutboxReceiver) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            frames: VecDeque::new(),
            close: None,
            sender_gone: false,
            receiver_gone: false,
        }),
        ready: Notify::new(),
        capacity: capacity.max(1),
    });
    (
        OutboxSender {
            inner: Arc::clone(&inner),
        },
        OutboxReceiver { inner },
    )
}

impl OutboxSender {
    /// Queues `frame` for the writer.
    pub(crate) fn push(&self, frame: Utf8Bytes) -> Result<(), PushError> {
        {
            let mut state = self.inner.lock();
            if state.receiver_gone {
                return Err(PushError::Gone);
            }
            if state.frames.len() >= self.inner.capacity {
                return Err(PushError::Full);
            }
            state.frames.push_back(frame);
        }
        self.inner.ready.notify_one();
        Ok(())
    }

    /// Tells the writer to close the connection with `command`, ahead of any queued frame.
    pub(crate) fn close(&self, command: CloseCommand) {
        self.inner.lock().close = Some(command);
        self.inner.ready.notify_one();
    }
}

impl Drop for OutboxSender {
    fn drop(&mut self) {
        self.inner.lock().sender_gone = true;
        self.inner.ready.notify_one();
    }
}

impl OutboxReceiver {
    /// The close order if there is one, else the next frame; `None` once the shard has let go
    /// and everything was taken.
    pub(crate) async fn next(&mut self) -> Option<Result<Utf8Bytes, CloseCommand>> {
        loop {
            {
                let mut state = self.inner.lock();
                if let Some(close) = state.close.take() {
                    return Some(Err(close));
                }
                if let Some(frame) = state.frames.pop_front() {
                    if state.frames.is_empty() && state.frames.capacity() > KEEP_SLOTS {
                        state.frames.shrink_to_fit();
                    }
                    return Some(Ok(frame));
                }
                if state.sender_gone {
                    return None;
                }
            }
            // A push between the check and here left a permit: this returns at once.
            self.inner.ready.notified().await;
        }
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.receiver_gone = true;
        state.frames.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Utf8Bytes {
        Utf8Bytes::from(s.to_owned())
    }

    #[tokio::test]
    async fn frames_come_out_in_order_and_a_full_queue_refuses() {
        let (tx, mut rx) = outbox(2);
        tx.push(text("a")).unwrap();
        tx.push(text("b")).unwrap();
        assert_eq!(tx.push(text("c")), Err(PushError::Full));
        assert_eq!(rx.next().await, Some(Ok(text("a"))));
        tx.push(text("c")).unwrap();
        assert_eq!(rx.next().await, Some(Ok(text("b"))));
        assert_eq!(rx.next().await, Some(Ok(text("c"))));
        drop(tx);
        assert_eq!(rx.next().await, None);
    }

    #[tokio::test]
    async fn the_close_order_goes_ahead_of_queued_frames() {
        let (tx, mut rx) = outbox(4);
        tx.push(text("a")).unwrap();
        let close = CloseCommand {
            code: 1008,
            reason: "slow consumer",
        };
        tx.close(close);
        assert_eq!(rx.next().await, Some(Err(close)));
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_for_a_push_and_for_the_end() {
        let (tx, mut rx) = outbox(4);
        let waiter = tokio::spawn(async move {
            let first = rx.next().await;
            let end = rx.next().await;
            (first, end)
        });
        tokio::task::yield_now().await;
        tx.push(text("late")).unwrap();
        drop(tx);
        let (first, end) = waiter.await.unwrap();
        assert_eq!(first, Some(Ok(text("late"))));
        assert_eq!(end, None);
    }

    #[tokio::test]
    async fn pushing_to_a_gone_writer_says_so_and_a_drained_burst_gives_its_room_back() {
        let (tx, mut rx) = outbox(512);
        for i in 0..100 {
            tx.push(text(&i.to_string())).unwrap();
        }
        for _ in 0..100 {
            rx.next().await.unwrap().unwrap();
        }
        assert!(tx.inner.lock().frames.capacity() <= KEEP_SLOTS);
        drop(rx);
        assert_eq!(tx.push(text("x")), Err(PushError::Gone));
    }
}
