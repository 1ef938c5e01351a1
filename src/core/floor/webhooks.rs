//! The floor's side of events out: subscriptions made, deleted and moved on by the
//! sender's reports. The rules themselves are `core/webhooks.rs`.

use std::sync::Arc;

use super::*;
use crate::core::webhooks::{NewWebhook, Progress, Webhook};

impl Floor {
    /// Makes a subscription; the sender learns the new list once it is durable.
    pub(crate) fn create_webhook(&mut self, new: NewWebhook, now: Millis) -> Result<Webhook, CoreError> {
        let (hook, changes) = self.webhooks.create(new, now)?;
        self.journal_webhooks(changes);
        Ok(hook)
    }

    /// Deletes a subscription; its events still waiting are not sent.
    pub(crate) fn delete_webhook(&mut self, id: &str) -> Result<(), CoreError> {
        let changes = self.webhooks.remove(id)?;
        self.journal_webhooks(changes);
        Ok(())
    }

    /// The sender's report: the cursor, drops and failing state, made durable.
    pub(crate) fn webhook_progress(&mut self, id: &str, progress: Progress) {
        for c in self.webhooks.progress(id, progress) {
            self.journal.change(c);
        }
    }

    fn journal_webhooks(&mut self, changes: Vec<Change>) {
        for c in changes {
            self.journal.change(c);
        }
        let list: Vec<Webhook> = self.webhooks.all().cloned().collect();
        self.journal.effect(Effect::Webhooks(Arc::new(list)));
    }
}
