//! Which node of a cluster takes a tenant nobody routes (docs/CLUSTER.md "Placement").
//!
//! The lease in JetStream decides who owns a tenant; this rule only decides who *tries
//! first*, so that tenants spread over the nodes instead of all going to whichever node
//! looks first. The preferred node for a free tenant is the live node that owns the fewest
//! tenants, ties broken by rendezvous hashing of the tenant's id with each node's id (so
//! every node computes the same answer from the same view, and a tenant's place changes
//! as little as possible when a node comes or goes). The preferred node takes a free
//! lease at once; any other node waits one more lease before it tries, so a preferred node
//! that died or cannot take the tenant delays it by one lease and no more.

use sha2::{Digest, Sha256};

/// A node that may take a tenant, as the node list shows it: its id and how many tenants
/// it routes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub owns: usize,
}

/// The rendezvous weight of `node` for `tenant`: the first 8 bytes of
/// SHA-256(tenant, 0, node).
fn weight(tenant: &str, node: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(tenant.as_bytes());
    h.update([0u8]);
    h.update(node.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first)
}

/// The node that should take `tenant` first among `candidates`: the one owning the
/// fewest tenants, then the highest rendezvous weight, then the smallest id. `None`
/// without candidates.
pub fn preferred<'a>(tenant: &str, candidates: &[Candidate<'a>]) -> Option<&'a str> {
    candidates
        .iter()
        .min_by(|a, b| {
            a.owns
                .cmp(&b.owns)
                .then_with(|| weight(tenant, b.id).cmp(&weight(tenant, a.id)))
                .then_with(|| a.id.cmp(b.id))
        })
        .map(|c| c.id)
}

/// How long node `me` waits, beyond the lease's own rule (free, or unchanged for a whole
/// lease), before it tries to take `tenant`: nothing when it is the preferred node among
/// the live `nodes` other than `holder` (the node whose lease lapsed: it is not coming
/// back in time; `me` itself after it stepped down), or when the view is empty;
/// `lease_ms` otherwise. `me` is a candidate
/// even when the view does not list it yet (its first heartbeat not read back).
pub fn wait_before_taking(tenant: &str, me: &str, holder: Option<&str>, nodes: &[Candidate<'_>], lease_ms: u64) -> u64 {
    if holder == Some(me) {
        // Its own lapsed lease (it stepped down): another node goes first.
        return lease_ms;
    }
    let mut candidates: Vec<Candidate<'_>> = nodes.iter().copied().filter(|c| Some(c.id) != holder).collect();
    if !candidates.iter().any(|c| c.id == me) {
        candidates.push(Candidate { id: me, owns: 0 });
    }
    match preferred(tenant, &candidates) {
        Some(p) if p != me => lease_ms,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes<'a>(list: &[(&'a str, usize)]) -> Vec<Candidate<'a>> {
        list.iter().map(|&(id, owns)| Candidate { id, owns }).collect()
    }

    #[test]
    fn the_least_loaded_node_is_preferred() {
        let view = nodes(&[("a", 2), ("b", 0), ("c", 1)]);
        for t in ["default", "acme", "globex", "t1", "t2"] {
            assert_eq!(preferred(t, &view), Some("b"), "tenant {t}");
        }
        assert_eq!(preferred("acme", &[]), None);
    }

    #[test]
    fn every_node_computes_the_same_preference_whatever_the_order() {
        let view = nodes(&[("n1", 0), ("n2", 0), ("n3", 0)]);
        let mut reversed = view.clone();
        reversed.reverse();
        for i in 0..200 {
            let t = format!("tenant-{i}");
            assert_eq!(preferred(&t, &view), preferred(&t, &reversed));
        }
    }

    #[test]
    fn equal_loads_spread_tenants_over_every_node() {
        let view = nodes(&[("n1", 0), ("n2", 0), ("n3", 0)]);
        let mut counts = std::collections::BTreeMap::new();
        for i in 0..3000 {
            *counts
                .entry(preferred(&format!("t{i}"), &view).unwrap_or(""))
                .or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 3, "{counts:?}");
        assert!(counts.values().all(|&n| (800..=1200).contains(&n)), "{counts:?}");
    }

    #[test]
    fn a_node_leaving_moves_only_its_own_tenants_preference() {
        let three = nodes(&[("n1", 0), ("n2", 0), ("n3", 0)]);
        let two = nodes(&[("n1", 0), ("n2", 0)]);
        for i in 0..500 {
            let t = format!("t{i}");
            let before = preferred(&t, &three);
            if before != Some("n3") {
                assert_eq!(preferred(&t, &two), before, "tenant {t}");
            }
        }
    }

    #[test]
    fn only_the_preferred_node_takes_at_once_and_the_holder_is_never_preferred() {
        let view = nodes(&[("a", 1), ("b", 0), ("c", 0)]);
        let first = preferred("acme", &nodes(&[("b", 0), ("c", 0)])).unwrap_or("");
        let other = if first == "b" { "c" } else { "b" };
        assert_eq!(wait_before_taking("acme", first, None, &view, 1500), 0);
        assert_eq!(wait_before_taking("acme", other, None, &view, 1500), 1500);
        assert_eq!(wait_before_taking("acme", "a", None, &view, 1500), 1500);
        // The holder's lease lapsed: it is not a candidate, however few tenants it owns.
        let view = nodes(&[("a", 0), ("b", 3), ("c", 5)]);
        assert_eq!(wait_before_taking("acme", "b", Some("a"), &view, 1500), 0);
        assert_eq!(wait_before_taking("acme", "c", Some("a"), &view, 1500), 1500);
        assert_eq!(wait_before_taking("acme", "a", Some("a"), &view, 1500), 1500);
    }

    #[test]
    fn a_node_missing_from_the_view_counts_itself_and_an_empty_view_waits_for_nobody() {
        assert_eq!(wait_before_taking("acme", "a", None, &[], 1500), 0);
        // Not listed yet, owning nothing: it competes with what the view shows.
        let busy = nodes(&[("b", 2)]);
        assert_eq!(wait_before_taking("acme", "a", None, &busy, 1500), 0);
        let idle = nodes(&[("b", 0), ("c", 0)]);
        let expect = if preferred("acme", &nodes(&[("a", 0), ("b", 0), ("c", 0)])) == Some("a") {
            0
        } else {
            1500
        };
        assert_eq!(wait_before_taking("acme", "a", None, &idle, 1500), expect);
    }
}
