//! What a new answer means for a watch: the events ContainerPilot defines, as pilot adjusts them
//! (README, "Compatibility with ContainerPilot 3.8", Watches).
//!
//! - `changed` when the set of healthy instances differs in anything a template can see (ID,
//!   node, address, port, tags, meta). Before the first answer the set counts as empty, so a
//!   first answer with no instance is not a change.
//! - `healthy` when the service goes from no instance (or unknown, before the first answer) to
//!   some; `unhealthy` when it goes to none, the first answer included (ContainerPilot emitted
//!   nothing on a first empty answer, and `healthy` on every change).
//! - An answer equal to the last one (a spurious wake-up) means nothing.

use crate::events::EventCode;

/// The events an answer causes, in the order they are published. The items are a service
/// watch's instances or a KV watch's pairs: for a key, "healthy" is "exists", for a prefix
/// "has a key under it".
pub fn events<T: PartialEq>(previous: Option<&[T]>, current: &[T]) -> Vec<EventCode> {
    let mut events = Vec::new();
    if previous.unwrap_or_default() != current {
        events.push(EventCode::StatusChanged);
    }
    // `None` until the first answer.
    let was_healthy = previous.map(|p| !p.is_empty());
    match (was_healthy, current.is_empty()) {
        (Some(true), false) | (Some(false), true) => {}
        (_, false) => events.push(EventCode::StatusHealthy),
        (_, true) => events.push(EventCode::StatusUnhealthy),
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consul::Instance;
    use EventCode::{
        StatusChanged as Changed, StatusHealthy as Healthy, StatusUnhealthy as Unhealthy,
    };

    fn instance(id: &str, address: &str) -> Instance {
        Instance {
            node: "n1".into(),
            id: id.into(),
            name: "app".into(),
            address: address.into(),
            port: 8080,
            tags: vec![],
            meta: Default::default(),
        }
    }

    /// Trace E (reference section 13) as pilot adjusts it: 0, 1, the same 1, 2, 0 instances.
    #[test]
    fn trace_e() {
        let one = vec![instance("a", "10.0.0.1")];
        let two = vec![instance("a", "10.0.0.1"), instance("b", "10.0.0.2")];
        assert_eq!(events::<Instance>(None, &[]), [Unhealthy]);
        assert_eq!(events(Some(&[]), &one), [Changed, Healthy]);
        assert_eq!(events(Some(&one), &one.clone()), []);
        assert_eq!(events(Some(&one), &two), [Changed]);
        assert_eq!(events(Some(&two), &[]), [Changed, Unhealthy]);
    }

    #[test]
    fn a_first_answer_with_instances_is_a_change_and_healthy() {
        assert_eq!(
            events(None, &[instance("a", "10.0.0.1")]),
            [Changed, Healthy]
        );
    }

    #[test]
    fn every_visible_field_counts_as_a_change() {
        let base = instance("a", "10.0.0.1");
        let mut variants = Vec::new();
        let mut v = base.clone();
        v.address = "10.0.0.9".into();
        variants.push(v);
        let mut v = base.clone();
        v.port = 9;
        variants.push(v);
        let mut v = base.clone();
        v.id = "a2".into();
        variants.push(v);
        let mut v = base.clone();
        v.tags = vec!["blue".into()];
        variants.push(v);
        let mut v = base.clone();
        v.meta.insert("version".into(), "2".into());
        variants.push(v);
        let mut v = base.clone();
        v.node = "n2".into();
        variants.push(v);
        for changed in variants {
            assert_eq!(
                events(
                    Some(std::slice::from_ref(&base)),
                    std::slice::from_ref(&changed)
                ),
                [Changed],
                "{changed:?}"
            );
        }
    }

    #[test]
    fn staying_empty_means_nothing() {
        assert_eq!(events::<Instance>(Some(&[]), &[]), []);
    }
}
