//! Waiting for the publish and subscribe webhooks: the connection sets
//! the packet aside with the request's future and reads nothing more from
//! its client until the answer comes, so the packets after it are acted on
//! in order; deliveries to the client keep flowing meanwhile.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::auth::{self, FilterVerdicts, PublishCheck, SubscribeCheck};
use crate::codec::{Publish, ReasonCode, Subscribe};
use crate::config::WebhookHook;

use super::CloseReason;
use super::run::Conn;

/// What a connection with publish or subscribe webhooks keeps. Boxed in
/// [`Conn`]: connections of other listeners pay one pointer.
pub(super) struct HookState {
    pub username: Option<Box<str>>,
    pending: Option<Pending>,
}

struct Pending {
    answer: Pin<Box<dyn Future<Output = Answer> + Send>>,
    packet: SetAside,
}

enum SetAside {
    Publish(Publish),
    Subscribe(Subscribe),
}

enum Answer {
    Publish(Option<ReasonCode>),
    Subscribe(Option<FilterVerdicts>),
}

impl HookState {
    /// The state for a connection of a listener with publish or subscribe
    /// hooks; `None` for the others.
    pub fn for_listener(
        listener: &crate::listener::ListenerSettings,
        username: Option<Box<str>>,
    ) -> Option<Box<HookState>> {
        let any = auth::hooks_for(listener, WebhookHook::AuthOnPublish).next().is_some()
            || auth::hooks_for(listener, WebhookHook::AuthOnSubscribe).next().is_some();
        any.then(|| {
            Box::new(HookState {
                username,
                pending: None,
            })
        })
    }
}

impl Conn {
    /// A packet is set aside waiting for a webhook.
    pub(super) fn suspended(&self) -> bool {
        self.hooks.as_ref().is_some_and(|h| h.pending.is_some())
    }

    /// Sets `p` aside if a publish hook must be asked about it (no cached
    /// "ok"); gives it back otherwise.
    pub(super) fn ask_publish_hooks(&mut self, p: Publish) -> Option<Publish> {
        let Some(state) = self.hooks.as_mut() else {
            return Some(p);
        };
        let client_id = &self.attached.session.client_id;
        let mut chain = auth::hooks_for(&self.listener, WebhookHook::AuthOnPublish).peekable();
        let Some(first) = chain.peek() else { return Some(p) };
        if first.publish_allowed_cached(client_id, state.username.as_deref(), &p) {
            return Some(p);
        }
        let hooks: Vec<Arc<auth::Webhook>> = chain.cloned().collect();
        let check = PublishCheck {
            client_id: client_id.clone(),
            username: state.username.clone(),
            topic: p.topic.clone(),
            qos: p.qos as u8,
            retain: p.retain,
            payload: p.payload.clone(),
        };
        state.pending = Some(Pending {
            answer: Box::pin(async move { Answer::Publish(auth::check_publish(hooks, check).await) }),
            packet: SetAside::Publish(p),
        });
        None
    }

    /// Sets `s` aside if a subscribe hook must be asked about it.
    pub(super) fn ask_subscribe_hooks(&mut self, s: Subscribe) -> Option<Subscribe> {
        let Some(state) = self.hooks.as_mut() else {
            return Some(s);
        };
        let hooks: Vec<Arc<auth::Webhook>> = auth::hooks_for(&self.listener, WebhookHook::AuthOnSubscribe)
            .cloned()
            .collect();
        if hooks.is_empty() {
            return Some(s);
        }
        let check = SubscribeCheck {
            client_id: self.attached.session.client_id.clone(),
            username: state.username.clone(),
            filters: s.filters.iter().map(|(f, o)| (f.clone(), o.qos as u8)).collect(),
        };
        state.pending = Some(Pending {
            answer: Box::pin(async move { Answer::Subscribe(auth::check_subscribe(hooks, check).await) }),
            packet: SetAside::Subscribe(s),
        });
        None
    }

    /// Acts on the set-aside packet once its answer is in, then on what the
    /// client sent after it.
    pub(super) fn poll_hooks(&mut self, cx: &mut Context<'_>) -> Result<(), CloseReason> {
        loop {
            let Some(state) = self.hooks.as_mut() else {
                return Ok(());
            };
            let Some(pending) = state.pending.as_mut() else {
                return Ok(());
            };
            let Poll::Ready(answer) = pending.answer.as_mut().poll(cx) else {
                return Ok(());
            };
            let Some(pending) = state.pending.take() else {
                return Ok(());
            };
            match (pending.packet, answer) {
                (SetAside::Publish(p), Answer::Publish(refusal)) => self.finish_publish(p, refusal)?,
                (SetAside::Subscribe(s), Answer::Subscribe(verdicts)) => self.subscribe_with(s, verdicts)?,
                // Each request answers its own kind of packet.
                _ => {}
            }
            if !self.rbuf.is_empty() {
                let buffered = std::mem::take(&mut self.rbuf);
                let consumed = self.process(&buffered)?;
                self.keep_partial(&buffered[consumed..]);
            }
        }
    }
}
