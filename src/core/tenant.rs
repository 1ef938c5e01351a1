//! Tenants: the operator's registry of the contact centres one deployment hosts
//! (../shared/API.md "Tenants"; docs/TENANTS.md for the decisions).
//!
//! A tenant is one contact centre, routed by a `Floor` of its own. This module holds the
//! rules of the registry: what a tenant id may be, how many tenants there may be, which
//! change of name, limits or admin credential is accepted, when a tenant may be deleted,
//! and the per-tenant limits. It decides; `crate::tenants` makes the decision durable and
//! starts or stops the tenant's engine. Every check returns the record to store and
//! changes nothing: the registry is changed by [`Registry::put`] and [`Registry::remove`]
//! once the store has the change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CoreError, Millis, MAX_NAME_CHARS};

/// The tenant of a deployment that never created one: today's store, config and admin
/// token. It always exists and cannot be deleted.
pub const DEFAULT_TENANT: &str = "default";

/// The longest tenant id.
pub const MAX_TENANT_ID_CHARS: usize = 32;

/// What one tenant may hold at most; `None` is no limit of its own (the deployment's
/// caps still apply).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_agents: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_conversations: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queues: Option<u32>,
}

/// Which of a tenant's limits a change would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Agents,
    OpenConversations,
    Queues,
}

impl Limit {
    /// The limit's name, as the operator sets it and a refusal names it.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Agents => "max_agents",
            Limit::OpenConversations => "max_open_conversations",
            Limit::Queues => "max_queues",
        }
    }
}

impl TenantLimits {
    /// The limit's value, if set.
    pub fn get(&self, limit: Limit) -> Option<u32> {
        match limit {
            Limit::Agents => self.max_agents,
            Limit::OpenConversations => self.max_open_conversations,
            Limit::Queues => self.max_queues,
        }
    }

    /// Refuses (409 `tenant_limit`) one more of `limit` when the tenant holds `held`.
    pub fn admit(&self, limit: Limit, held: usize) -> Result<(), CoreError> {
        match self.get(limit) {
            Some(max) if held >= max as usize => Err(CoreError::TenantLimit {
                limit: limit.name(),
                max,
            }),
            _ => Ok(()),
        }
    }
}

/// One tenant as the registry keeps it. Its admin token is kept as its SHA-256
/// (`admin_credential`), like every token of the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub limits: TenantLimits,
    pub admin_credential: String,
    pub created_ms: Millis,
}

/// A change of a tenant's name or limits (`PATCH`). `limits` replaces the tenant's limits
/// as a whole: a limit left out of it is no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub limits: Option<TenantLimits>,
}

/// True for a tenant id: 1 to [`MAX_TENANT_ID_CHARS`] of `[a-z0-9-]`, starting with a
/// letter or digit. Narrower than other ids: a tenant id names a directory, a metrics
/// label and a sign-in field, the same on every file system and in every case.
pub fn valid_tenant_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_TENANT_ID_CHARS
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `id` (an agent's, a queue's, a customer's) as a key among every tenant's: `id` itself in
/// tenant `default` (`None`), `tenant/id` elsewhere. Ids are unique within a tenant only;
/// neither a tenant id nor another id holds a `/`, so no two tenants' keys meet.
pub fn scoped(tenant: Option<&str>, id: &str) -> String {
    match tenant {
        None | Some(DEFAULT_TENANT) => id.to_string(),
        Some(t) => format!("{t}/{id}"),
    }
}

fn check_tenant_name(name: &str) -> Result<(), CoreError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS || name.trim().is_empty() {
        return Err(CoreError::InvalidInput(format!(
            "tenant name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(())
}

/// The tenants of a deployment other than [`DEFAULT_TENANT`], and how many there may be
/// (`server.max_tenants`, counting `default`).
#[derive(Debug, Clone)]
pub struct Registry {
    tenants: BTreeMap<String, Tenant>,
    max_tenants: usize,
}

impl Registry {
    /// The registry as the store holds it. Tenants over `max_tenants` (the setting was
    /// lowered) are kept: the bound refuses new tenants, never drops existing ones.
    pub fn new(max_tenants: usize, tenants: impl IntoIterator<Item = Tenant>) -> Self {
        Registry {
            tenants: tenants.into_iter().map(|t| (t.id.clone(), t)).collect(),
            max_tenants,
        }
    }

    /// Every tenant but `default`, in id order.
    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.values()
    }

    /// The tenant `id`, not `default` (404 `unknown_tenant`).
    pub fn get(&self, id: &str) -> Result<&Tenant, CoreError> {
        self.tenants
            .get(id)
            .ok_or_else(|| CoreError::UnknownTenant(id.to_string()))
    }

    /// The tenant whose admin token has `credential`.
    pub fn by_admin_credential(&self, credential: &str) -> Option<&Tenant> {
        self.tenants.values().find(|t| t.admin_credential == credential)
    }

    /// A new tenant `id` named `name` with the admin credential `credential`: refused when
    /// the id or name is malformed (400), taken (409 `already_exists`, `default`
    /// included), or the deployment holds `server.max_tenants` (409 `tenant_limit`).
    pub fn create(&self, id: &str, name: &str, credential: String, now: Millis) -> Result<Tenant, CoreError> {
        if !valid_tenant_id(id) {
            return Err(CoreError::InvalidInput(format!(
                "tenant id must be 1 to {MAX_TENANT_ID_CHARS} characters from [a-z0-9-], not starting with -"
            )));
        }
        check_tenant_name(name)?;
        if id == DEFAULT_TENANT || self.tenants.contains_key(id) {
            return Err(CoreError::AlreadyExists {
                kind: "tenant",
                id: id.to_string(),
            });
        }
        // `default` counts.
        if self.tenants.len() + 1 >= self.max_tenants {
            return Err(CoreError::TenantLimit {
                limit: "max_tenants",
                max: u32::try_from(self.max_tenants).unwrap_or(u32::MAX),
            });
        }
        Ok(Tenant {
            id: id.to_string(),
            name: name.to_string(),
            limits: TenantLimits::default(),
            admin_credential: credential,
            created_ms: now,
        })
    }

    /// Tenant `id` with `patch` applied (400 for a malformed name, 404 for an unknown id).
    pub fn patch(&self, id: &str, patch: TenantPatch) -> Result<Tenant, CoreError> {
        let mut t = self.get(id)?.clone();
        if let Some(name) = patch.name {
            check_tenant_name(&name)?;
            t.name = name;
        }
        if let Some(limits) = patch.limits {
            t.limits = limits;
        }
        Ok(t)
    }

    /// Tenant `id` with a new admin credential; the old token stops working once stored.
    pub fn reissue(&self, id: &str, credential: String) -> Result<Tenant, CoreError> {
        let mut t = self.get(id)?.clone();
        t.admin_credential = credential;
        Ok(t)
    }

    /// Whether tenant `id`, holding `open_conversations`, may be deleted: never `default`
    /// (409 `invalid_state`), never while a conversation is open (409 `tenant_not_empty`).
    pub fn may_delete(&self, id: &str, open_conversations: usize) -> Result<(), CoreError> {
        if id == DEFAULT_TENANT {
            return Err(CoreError::InvalidState("tenant default cannot be deleted".into()));
        }
        self.get(id)?;
        if open_conversations > 0 {
            return Err(CoreError::TenantNotEmpty {
                tenant: id.to_string(),
                open_conversations,
            });
        }
        Ok(())
    }

    /// Takes in a tenant the store now holds (created or changed).
    pub fn put(&mut self, tenant: Tenant) {
        self.tenants.insert(tenant.id.clone(), tenant);
    }

    /// Forgets a tenant the store no longer holds.
    pub fn remove(&mut self, id: &str) -> Option<Tenant> {
        self.tenants.remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max: usize) -> Registry {
        Registry::new(max, [])
    }

    #[test]
    fn tenant_ids_are_narrow() {
        for good in ["acme", "a", "acme-2", "0", &"a".repeat(MAX_TENANT_ID_CHARS)] {
            assert!(valid_tenant_id(good), "{good:?}");
        }
        for bad in [
            "",
            "Acme",
            "a_b",
            "a.b",
            "..",
            "-a",
            "a b",
            "é",
            &"a".repeat(MAX_TENANT_ID_CHARS + 1),
        ] {
            assert!(!valid_tenant_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn scoped_keys_are_ids_in_default_and_apart_elsewhere() {
        assert_eq!(scoped(None, "a1"), "a1");
        assert_eq!(scoped(Some(DEFAULT_TENANT), "a1"), "a1");
        assert_eq!(scoped(Some("acme"), "a1"), "acme/a1");
        assert_ne!(scoped(Some("acme"), "a1"), scoped(Some("beta"), "a1"));
    }

    #[test]
    fn a_tenant_is_created_once_and_default_is_taken() {
        let mut r = registry(10);
        let t = r.create("acme", "Acme", "h1".into(), 5).expect("created");
        assert_eq!((t.id.as_str(), t.name.as_str(), t.created_ms), ("acme", "Acme", 5));
        // Nothing changes before `put`.
        assert!(r.get("acme").is_err());
        r.put(t);
        for taken in ["acme", DEFAULT_TENANT] {
            let e = r.create(taken, "Again", "h2".into(), 6).unwrap_err();
            assert_eq!(e.code(), "already_exists", "{taken}");
        }
        assert_eq!(
            r.create("Bad Id", "X", "h".into(), 6).unwrap_err().code(),
            "invalid_input"
        );
        assert_eq!(r.create("ok", "  ", "h".into(), 6).unwrap_err().code(), "invalid_input");
        assert_eq!(r.by_admin_credential("h1").map(|t| t.id.as_str()), Some("acme"));
        assert!(r.by_admin_credential("h2").is_none());
    }

    #[test]
    fn max_tenants_counts_default_and_never_drops_a_tenant() {
        let mut r = registry(3);
        for id in ["a", "b"] {
            let t = r.create(id, id, format!("h-{id}"), 1).expect("under the bound");
            r.put(t);
        }
        let e = r.create("c", "c", "h-c".into(), 1).unwrap_err();
        assert_eq!(e.code(), "tenant_limit");
        assert!(e.to_string().contains("max_tenants"), "{e}");
        // A lowered bound keeps what exists.
        let lowered = Registry::new(1, r.tenants().cloned().collect::<Vec<_>>());
        assert_eq!(lowered.tenants().count(), 2);
        assert_eq!(
            lowered.create("d", "d", "h".into(), 1).unwrap_err().code(),
            "tenant_limit"
        );
    }

    #[test]
    fn patch_and_reissue_return_the_changed_tenant_only() {
        let mut r = registry(10);
        r.put(r.create("acme", "Acme", "h1".into(), 1).expect("created"));
        let limits = TenantLimits {
            max_agents: Some(2),
            ..Default::default()
        };
        let t = r
            .patch(
                "acme",
                TenantPatch {
                    name: Some("Acme Ltd".into()),
                    limits: Some(limits),
                },
            )
            .expect("patched");
        assert_eq!((t.name.as_str(), t.limits), ("Acme Ltd", limits));
        assert_eq!(r.get("acme").map(|t| t.name.as_str()), Ok("Acme"), "not before put");
        let bad = TenantPatch {
            name: Some(String::new()),
            limits: None,
        };
        assert_eq!(r.patch("acme", bad).unwrap_err().code(), "invalid_input");
        assert_eq!(
            r.patch("nope", TenantPatch::default()).unwrap_err().code(),
            "unknown_tenant"
        );
        let t = r.reissue("acme", "h9".into()).expect("reissued");
        r.put(t);
        assert!(r.by_admin_credential("h1").is_none());
        assert!(r.by_admin_credential("h9").is_some());
    }

    #[test]
    fn a_tenant_is_deleted_only_when_empty_and_default_never() {
        let mut r = registry(10);
        r.put(r.create("acme", "Acme", "h1".into(), 1).expect("created"));
        assert_eq!(r.may_delete("acme", 3).unwrap_err().code(), "tenant_not_empty");
        assert_eq!(r.may_delete(DEFAULT_TENANT, 0).unwrap_err().code(), "invalid_state");
        assert_eq!(r.may_delete("nope", 0).unwrap_err().code(), "unknown_tenant");
        assert_eq!(r.may_delete("acme", 0), Ok(()));
        assert!(r.remove("acme").is_some());
        assert!(r.get("acme").is_err());
    }

    #[test]
    fn limits_refuse_one_more_at_the_limit_and_name_it() {
        let limits = TenantLimits {
            max_agents: Some(2),
            max_open_conversations: Some(0),
            max_queues: None,
        };
        assert_eq!(limits.admit(Limit::Agents, 1), Ok(()));
        let e = limits.admit(Limit::Agents, 2).unwrap_err();
        assert_eq!(e.code(), "tenant_limit");
        assert!(e.to_string().contains("max_agents"), "{e}");
        assert!(limits.admit(Limit::OpenConversations, 0).is_err());
        assert_eq!(limits.admit(Limit::Queues, 1_000_000), Ok(()));
    }
}
