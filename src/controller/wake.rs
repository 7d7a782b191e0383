//! Reconciling objects on demand, from outside their watches: an object that failed because
//! its tenant could not be read is woken as soon as the tenant answers again, instead of
//! waiting out its backoff.

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::runtime::reflector::ObjectRef;

/// One wake channel per watched namespace (or one for all), feeding the controller of that
/// namespace through `Controller::reconcile_on`.
pub struct Wakers<K: kube::Resource<DynamicType = ()>> {
    senders: Vec<(Option<String>, UnboundedSender<ObjectRef<K>>)>,
}

impl<K: kube::Resource<DynamicType = ()>> Default for Wakers<K> {
    fn default() -> Self {
        Wakers {
            senders: Vec::new(),
        }
    }
}

impl<K: kube::Resource<DynamicType = ()>> Wakers<K> {
    /// A channel for the controller of `namespace` (`None`: every namespace); the receiver
    /// goes to its `reconcile_on`.
    pub fn channel(&mut self, namespace: Option<String>) -> UnboundedReceiver<ObjectRef<K>> {
        let (tx, rx) = unbounded();
        self.senders.push((namespace, tx));
        rx
    }

    /// Asks the controller that watches `target` to reconcile it now. A controller that has
    /// stopped (shutdown) no longer listens, which is fine.
    pub fn wake(&self, target: ObjectRef<K>) {
        let sender = self
            .senders
            .iter()
            .find(|(ns, _)| ns.is_none() || *ns == target.namespace);
        if let Some((_, tx)) = sender {
            let _ = tx.unbounded_send(target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::QlikAutomation;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_wake_reaches_the_controller_of_the_objects_namespace() {
        let mut wakers: Wakers<QlikAutomation> = Wakers::default();
        let mut a = wakers.channel(Some("a".into()));
        let mut b = wakers.channel(Some("b".into()));
        wakers.wake(ObjectRef::new("x").within("b"));
        wakers.wake(ObjectRef::new("y").within("elsewhere"));
        drop(wakers);
        assert_eq!(b.next().await.map(|r| r.name), Some("x".to_string()));
        assert!(b.next().await.is_none());
        assert!(a.next().await.is_none());
    }
}
