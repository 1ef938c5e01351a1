//! One actor per queue: its live figures.

use actix::prelude::*;

use crate::core::{Millis, QueueId};

/// The live figures of one queue, as the router last reported them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFigures {
    pub waiting: usize,
    /// `received_at` of the conversation waiting longest, if any.
    pub oldest_received_at: Option<Millis>,
    pub agents_available: usize,
}

/// Keeps one queue's figures and publishes them as metrics gauges.
pub struct QueueActor {
    queue: QueueId,
    figures: QueueFigures,
}

impl QueueActor {
    pub fn new(queue: QueueId) -> Self {
        QueueActor {
            queue,
            figures: QueueFigures::default(),
        }
    }
}

impl Actor for QueueActor {
    type Context = Context<Self>;
}

/// The router's latest figures for this queue.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Figures(pub QueueFigures);

impl Handler<Figures> for QueueActor {
    type Result = ();

    fn handle(&mut self, msg: Figures, _ctx: &mut Self::Context) {
        let _span = tracing::trace_span!("queue_actor", queue = %self.queue, message = "Figures").entered();
        if msg.0 != self.figures {
            tracing::trace!(queue = %self.queue, waiting = msg.0.waiting, "queue figures");
            crate::metrics::QUEUE_WAITING
                .with_label_values(&[&self.queue])
                .set(msg.0.waiting as i64);
            self.figures = msg.0;
        }
    }
}

/// Read the figures.
#[derive(Message)]
#[rtype(result = "QueueFigures")]
pub struct ReadFigures;

impl Handler<ReadFigures> for QueueActor {
    type Result = MessageResult<ReadFigures>;

    fn handle(&mut self, _msg: ReadFigures, _ctx: &mut Self::Context) -> Self::Result {
        let _span = tracing::trace_span!("queue_actor", queue = %self.queue, message = "ReadFigures").entered();
        MessageResult(self.figures.clone())
    }
}
