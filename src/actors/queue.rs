//! One actor per queue: its live figures (waiting, the oldest `received_at`, agents
//! available), which it keeps and publishes: as the metrics gauge, and on the queue board
//! ([`crate::protocol::QueueBoard`]) that the supervisor hub reads once per tick.

use std::sync::Arc;

use actix::prelude::*;

pub use crate::protocol::QueueFigures;
use crate::protocol::Shared;

/// Keeps one queue's figures and publishes them when they change.
pub struct QueueActor {
    figures: QueueFigures,
    shared: Arc<Shared>,
}

impl QueueActor {
    pub fn new(id: crate::core::QueueId, name: String, shared: Arc<Shared>) -> Self {
        QueueActor {
            figures: QueueFigures {
                id,
                name,
                ..Default::default()
            },
            shared,
        }
    }
}

impl Actor for QueueActor {
    type Context = Context<Self>;

    /// A queue is on the board from the start, with its figures all zero.
    fn started(&mut self, _ctx: &mut Self::Context) {
        self.shared.publish_queue(self.figures.clone());
    }
}

/// The router's latest figures for this queue.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Figures(pub QueueFigures);

impl Handler<Figures> for QueueActor {
    type Result = ();

    fn handle(&mut self, msg: Figures, _ctx: &mut Self::Context) {
        let _span = tracing::trace_span!("queue_actor", queue = %self.figures.id, message = "Figures").entered();
        if msg.0 != self.figures {
            tracing::trace!(queue = %self.figures.id, waiting = msg.0.waiting, "queue figures");
            let label = crate::core::tenant::scoped(self.shared.tenant.as_deref(), &self.figures.id);
            crate::metrics::QUEUE_WAITING
                .with_label_values(&[&label])
                .set(msg.0.waiting as i64);
            self.figures = msg.0;
            self.shared.publish_queue(self.figures.clone());
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
        let _span = tracing::trace_span!("queue_actor", queue = %self.figures.id, message = "ReadFigures").entered();
        MessageResult(self.figures.clone())
    }
}
