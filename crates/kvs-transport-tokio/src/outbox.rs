//! One connection's outbound queue: the frames the shard hands its writer, and the order to
//! close. A bounded queue that costs almost nothing while empty, which is how most
//! connections spend their life: no slots are reserved up front, and a queue gives its room
//! back each time it is drained. The writer takes everything queued at once, so
//! that a burst goes out in one vectored write.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use kvs_signaling_core::{ConnId, Frame, Receipt};

use crate::shard::CloseCommand;

/// What to tell once a tracked frame is written (or never will be): for a message whose
/// sender asked for delivery status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ack {
    /// The hub of this process, with its receipt.
    Hub(Box<Receipt>),
    /// The hub of another node, which knows the frame by this token of a bridged
    /// connection.
    Link {
        /// The bridged connection.
        conn: ConnId,
        /// The owner's token for the frame.
        token: u64,
    },
}

/// A frame to write, when the message it relays was read from its sender (for the relay
/// latency; `None` for frames that relay nothing read just now), and what to tell once it is
/// written (or not), for a message whose sender asked for delivery status.
pub(crate) type Queued = (Frame, Option<Instant>, Option<Ack>);

/// The tracked frames among `frames`, with what to tell.
pub(crate) fn tracked(frames: impl IntoIterator<Item = Queued>) -> Vec<(Ack, Frame)> {
    frames
        .into_iter()
        .filter_map(|(frame, _, ack)| ack.map(|ack| (ack, frame)))
        .collect()
}

struct State {
    frames: VecDeque<Queued>,
    /// Tracked frames that will never be written (the connection closes): the hub hears of
    /// them, so that it holds them again.
    unwritten: Vec<(Ack, Frame)>,
    close: Option<CloseCommand>,
    sender_gone: bool,
    receiver_gone: bool,
    /// The writer waiting for something to do.
    waker: Option<Waker>,
}

struct Inner {
    state: Mutex<State>,
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

/// What the writer is to do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Batch {
    /// Write these frames, in order.
    Frames(VecDeque<Queued>),
    /// Close the connection (frames still queued are dropped).
    Close(CloseCommand),
    /// The shard has let go and everything was taken.
    End,
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
            unwritten: Vec::new(),
            close: None,
            sender_gone: false,
            receiver_gone: false,
            waker: None,
        }),
        capacity: capacity.max(1),
    });
    (
        OutboxSender {
            inner: Arc::clone(&inner),
        },
        OutboxReceiver { inner },
    )
}

/// Wakes `waker`, outside the lock.
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl OutboxSender {
    /// Queues `frame` for the writer; gives it back when it cannot.
    pub(crate) fn push(&self, frame: Queued) -> Result<(), (PushError, Queued)> {
        let waker = {
            let mut state = self.inner.lock();
            if state.receiver_gone {
                return Err((PushError::Gone, frame));
            }
            if state.frames.len() >= self.inner.capacity {
                return Err((PushError::Full, frame));
            }
            state.frames.push_back(frame);
            state.waker.take()
        };
        wake(waker);
        Ok(())
    }

    /// Tells the writer to close the connection with `command`, ahead of any queued frame.
    pub(crate) fn close(&self, command: CloseCommand) {
        let waker = {
            let mut state = self.inner.lock();
            state.close = Some(command);
            state.waker.take()
        };
        wake(waker);
    }
}

impl Drop for OutboxSender {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.inner.lock();
            state.sender_gone = true;
            state.waker.take()
        };
        wake(waker);
    }
}

impl OutboxReceiver {
    /// The close order if there is one, else every queued frame (all of them when `max` is
    /// at least the queue's capacity, without copying: the queue's own storage is handed
    /// over, and the queue is left holding nothing, as most idle connections do), else `End`
    /// once the shard has let go; `Pending` until one of them.
    pub(crate) fn poll_batch(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<Batch> {
        let mut state = self.inner.lock();
        if let Some(close) = state.close.take() {
            let dropped = std::mem::take(&mut state.frames);
            state.unwritten.extend(tracked(dropped));
            return Poll::Ready(Batch::Close(close));
        }
        if !state.frames.is_empty() {
            let frames = if state.frames.len() <= max.max(1) {
                std::mem::take(&mut state.frames)
            } else {
                state.frames.drain(..max.max(1)).collect()
            };
            return Poll::Ready(Batch::Frames(frames));
        }
        if state.sender_gone {
            return Poll::Ready(Batch::End);
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Waits for the next [`Batch`] of at most `max` frames.
    pub(crate) async fn next_batch(&mut self, max: usize) -> Batch {
        std::future::poll_fn(|cx| self.poll_batch(cx, max)).await
    }

    /// Waits for one frame, or the close order; `None` at the end.
    pub(crate) async fn next(&mut self) -> Option<Result<Frame, CloseCommand>> {
        match self.next_batch(1).await {
            Batch::Frames(mut frames) => frames.pop_front().map(|(frame, ..)| Ok(frame)),
            Batch::Close(close) => Some(Err(close)),
            Batch::End => None,
        }
    }
}

impl OutboxReceiver {
    /// Gives back the tracked frames of `frames`, which were taken but not written.
    pub(crate) fn give_back(&mut self, frames: impl IntoIterator<Item = Queued>) {
        let tracked = tracked(frames);
        if !tracked.is_empty() {
            self.inner.lock().unwritten.extend(tracked);
        }
    }

    /// Every tracked frame that will not be written: given back, dropped at a close, or still
    /// queued (the queue is emptied).
    pub(crate) fn take_unwritten(&mut self) -> Vec<(Ack, Frame)> {
        let mut state = self.inner.lock();
        let queued = std::mem::take(&mut state.frames);
        let mut unwritten = std::mem::take(&mut state.unwritten);
        unwritten.extend(tracked(queued));
        unwritten
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.receiver_gone = true;
        state.frames.clear();
        state.waker = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Queued {
        (Frame::from(s.to_owned()), None, None)
    }

    fn frame(s: &str) -> Frame {
        Frame::from(s.to_owned())
    }

    #[tokio::test]
    async fn frames_come_out_in_order_and_a_full_queue_refuses() {
        let (tx, mut rx) = outbox(2);
        tx.push(text("a")).unwrap();
        tx.push(text("b")).unwrap();
        assert_eq!(tx.push(text("c")), Err((PushError::Full, text("c"))));
        assert_eq!(rx.next().await, Some(Ok(frame("a"))));
        tx.push(text("c")).unwrap();
        assert_eq!(
            rx.next_batch(8).await,
            Batch::Frames(vec![text("b"), text("c")].into())
        );
        drop(tx);
        assert_eq!(rx.next().await, None);
    }

    #[tokio::test]
    async fn a_batch_takes_at_most_its_size() {
        let (tx, mut rx) = outbox(16);
        for i in 0..5 {
            tx.push(text(&i.to_string())).unwrap();
        }
        assert_eq!(
            rx.next_batch(3).await,
            Batch::Frames(vec![text("0"), text("1"), text("2")].into())
        );
        assert_eq!(
            rx.next_batch(3).await,
            Batch::Frames(vec![text("3"), text("4")].into())
        );
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
        assert_eq!(first, Some(Ok(frame("late"))));
        assert_eq!(end, None);
    }

    #[tokio::test]
    async fn pushing_to_a_gone_writer_says_so_and_a_drained_burst_gives_its_room_back() {
        let (tx, mut rx) = outbox(512);
        for i in 0..100 {
            tx.push(text(&i.to_string())).unwrap();
        }
        assert!(matches!(rx.next_batch(512).await, Batch::Frames(f) if f.len() == 100));
        assert_eq!(tx.inner.lock().frames.capacity(), 0);
        drop(rx);
        assert_eq!(tx.push(text("x")), Err((PushError::Gone, text("x"))));
    }
}
