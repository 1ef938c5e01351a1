//! Tenants: the operator's registry of the contact centres one deployment hosts
//! (../shared/API.md "Tenants"; docs/TENANTS.md for the decisions).
//!
//! A tenant is one contact centre, routed by a `Floor` of its own. This module holds the
//! rules of the registry: what a tenant id may be, how many tenants there may be, which
//! change of name, limits, wrap-up reasons, idle codes or admin credential is accepted,
//! when a tenant may be deleted, the per-tenant limits, and a tenant's effective rules
//! ([`Tenant::rules`]: its own wrap-up reasons and idle codes over the deployment's). It decides; `crate::tenants` makes the decision durable and
//! starts or stops the tenant's engine. Every check returns the record to store and
//! changes nothing: the registry is changed by [`Registry::put`] and [`Registry::remove`]
//! once the store has the change.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{valid_id, Code, Codes, CoreError, Millis, Rules, MAX_NAME_CHARS};

/// The tenant of a deployment that never created one: today's store, config and admin
/// token. It always exists and cannot be deleted.
pub const DEFAULT_TENANT: &str = "default";

/// The longest tenant id.
pub const MAX_TENANT_ID_CHARS: usize = 32;

/// The most entries of a tenant's list of wrap-up reasons or of idle codes.
pub const MAX_CODES: usize = 50;

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

/// A tenant's own wrap-up reasons and idle codes, as the operator set them; `None` is the
/// deployment's (the config's `wrapup.reasons`, `wrapup.default_reason`, `idle_codes`),
/// followed as the config changes. [`TenantCodes::effective`] is what the tenant's floor
/// uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantCodes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapup_reasons: Option<Vec<Code>>,
    /// One of the tenant's wrap-up reasons (its own, or the deployment's when it has none
    /// of its own). `None`: the deployment's default if it is one of the tenant's reasons,
    /// else the first of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_wrapup_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_codes: Option<Vec<Code>>,
}

impl TenantCodes {
    /// Refuses (400 `invalid_input`) a malformed list, or a default that is not one of the
    /// wrap-up reasons the tenant would have over `deployment`.
    pub fn check(&self, deployment: &Rules) -> Result<(), CoreError> {
        if let Some(reasons) = &self.wrapup_reasons {
            check_codes("wrapup_reasons", reasons)?;
        }
        if let Some(codes) = &self.idle_codes {
            check_codes("idle_codes", codes)?;
        }
        if let Some(default) = &self.default_wrapup_reason {
            let reasons = self.wrapup_reasons.as_deref().unwrap_or(&deployment.wrapup_reasons);
            if !reasons.iter().any(|r| &r.code == default) {
                return Err(CoreError::InvalidInput(format!(
                    "default_wrapup_reason {default:?} is not one of the tenant's wrap-up reasons"
                )));
            }
        }
        Ok(())
    }

    /// The wrap-up reasons and idle codes in force over `deployment`'s: each list the
    /// tenant's own or else the deployment's; the default the tenant's own if it is one of
    /// those reasons, else the deployment's if it is, else the first reason. (A stored
    /// default always passed [`TenantCodes::check`], but the deployment's lists may have
    /// changed since.)
    pub fn effective(&self, deployment: &Rules) -> Codes {
        let wrapup_reasons = match &self.wrapup_reasons {
            Some(own) => Arc::new(own.clone()),
            None => deployment.wrapup_reasons.clone(),
        };
        let idle_codes = match &self.idle_codes {
            Some(own) => Arc::new(own.clone()),
            None => deployment.idle_codes.clone(),
        };
        let listed = |code: &str| wrapup_reasons.iter().any(|r| r.code == code);
        let default_wrapup_reason = self
            .default_wrapup_reason
            .as_deref()
            .filter(|d| listed(d))
            .or_else(|| Some(deployment.default_wrapup_reason.as_str()).filter(|d| listed(d)))
            .or_else(|| wrapup_reasons.first().map(|r| r.code.as_str()))
            .unwrap_or(&deployment.default_wrapup_reason)
            .to_string();
        Codes {
            wrapup_reasons,
            default_wrapup_reason,
            idle_codes,
        }
    }
}

/// Refuses (400 `invalid_input`) a list of wrap-up reasons or idle codes (`what`) that is
/// empty or longer than [`MAX_CODES`], has a code that is not an id or appears twice, or
/// a label that is blank or longer than [`MAX_NAME_CHARS`].
fn check_codes(what: &str, list: &[Code]) -> Result<(), CoreError> {
    if list.is_empty() || list.len() > MAX_CODES {
        return Err(CoreError::InvalidInput(format!(
            "{what} must list 1 to {MAX_CODES} codes, not {}",
            list.len()
        )));
    }
    let mut seen = HashSet::with_capacity(list.len());
    for c in list {
        if !valid_id(&c.code) {
            return Err(CoreError::InvalidInput(format!(
                "{what}: code {:?} must be 1 to 64 characters from [A-Za-z0-9_.-]",
                c.code
            )));
        }
        let n = c.label.chars().count();
        if n == 0 || n > MAX_NAME_CHARS || c.label.trim().is_empty() {
            return Err(CoreError::InvalidInput(format!(
                "{what}: the label of {:?} must be 1 to {MAX_NAME_CHARS} characters",
                c.code
            )));
        }
        if !seen.insert(c.code.as_str()) {
            return Err(CoreError::InvalidInput(format!(
                "{what}: code {:?} is listed twice",
                c.code
            )));
        }
    }
    Ok(())
}

/// One tenant as the registry keeps it. Its admin token is kept as its SHA-256
/// (`admin_credential`), like every token of the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub limits: TenantLimits,
    /// Its own wrap-up reasons and idle codes, if any (absent from records written before
    /// tenants could have them: those read as the deployment's).
    #[serde(flatten)]
    pub codes: TenantCodes,
    pub admin_credential: String,
    pub created_ms: Millis,
}

impl Tenant {
    /// The tenant's rules: `deployment`'s (the config's) with the tenant's wrap-up reasons
    /// and idle codes in force ([`TenantCodes::effective`]).
    pub fn rules(&self, deployment: &Rules) -> Rules {
        deployment.clone().with_codes(self.codes.effective(deployment))
    }
}

/// A change of a tenant (`PATCH`); `None` leaves a field as it is. `limits` replaces the
/// tenant's limits as a whole: a limit left out of it is no limit. For wrap-up reasons,
/// their default and idle codes, `Some(Some(..))` replaces the tenant's own and
/// `Some(None)` gives the tenant the deployment's again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub limits: Option<TenantLimits>,
    pub wrapup_reasons: Option<Option<Vec<Code>>>,
    pub default_wrapup_reason: Option<Option<String>>,
    pub idle_codes: Option<Option<Vec<Code>>>,
}

/// The tenant among `tenants` whose admin token has SHA-256 `credential` (a cluster's
/// front servers ask their copy of the cluster's registry).
pub fn admin_of<'a>(tenants: impl IntoIterator<Item = &'a Tenant>, credential: &str) -> Option<&'a Tenant> {
    tenants.into_iter().find(|t| t.admin_credential == credential)
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

/// The tenants of a deployment other than [`DEFAULT_TENANT`], how many there may be
/// (`server.max_tenants`, counting `default`), and the deployment's rules (the config's,
/// tenant `default`'s) that a tenant's own codes are checked against.
#[derive(Debug, Clone)]
pub struct Registry {
    tenants: BTreeMap<String, Tenant>,
    max_tenants: usize,
    deployment: Rules,
}

impl Registry {
    /// The registry as the store holds it. Tenants over `max_tenants` (the setting was
    /// lowered) are kept: the bound refuses new tenants, never drops existing ones.
    pub fn new(max_tenants: usize, deployment: Rules, tenants: impl IntoIterator<Item = Tenant>) -> Self {
        Registry {
            tenants: tenants.into_iter().map(|t| (t.id.clone(), t)).collect(),
            max_tenants,
            deployment,
        }
    }

    /// The deployment's rules: tenant `default`'s, and every other tenant's but for the
    /// codes it set ([`Tenant::rules`]).
    pub fn deployment(&self) -> &Rules {
        &self.deployment
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
        admin_of(self.tenants.values(), credential)
    }

    /// A new tenant `id` named `name`, with its own `codes` if any and the admin credential
    /// `credential`: refused when the id, name or codes are malformed (400), the id is
    /// taken (409 `already_exists`, `default` included), or the deployment holds
    /// `server.max_tenants` (409 `tenant_limit`).
    pub fn create(
        &self,
        id: &str,
        name: &str,
        codes: TenantCodes,
        credential: String,
        now: Millis,
    ) -> Result<Tenant, CoreError> {
        if !valid_tenant_id(id) {
            return Err(CoreError::InvalidInput(format!(
                "tenant id must be 1 to {MAX_TENANT_ID_CHARS} characters from [a-z0-9-], not starting with -"
            )));
        }
        check_tenant_name(name)?;
        codes.check(&self.deployment)?;
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
            codes,
            admin_credential: credential,
            created_ms: now,
        })
    }

    /// Tenant `id` with `patch` applied (400 for a malformed name or codes, 404 for an
    /// unknown id). A patch that touches the codes has them checked as it leaves them: a
    /// default wrap-up reason kept from before must be one of the reasons after. (One that
    /// does not touch them leaves them as they are, even if the config's lists changed
    /// under a default since: [`TenantCodes::effective`] falls back then.)
    pub fn patch(&self, id: &str, patch: TenantPatch) -> Result<Tenant, CoreError> {
        let codes_touched =
            patch.wrapup_reasons.is_some() || patch.default_wrapup_reason.is_some() || patch.idle_codes.is_some();
        let mut t = self.get(id)?.clone();
        if let Some(name) = patch.name {
            check_tenant_name(&name)?;
            t.name = name;
        }
        if let Some(limits) = patch.limits {
            t.limits = limits;
        }
        if let Some(reasons) = patch.wrapup_reasons {
            t.codes.wrapup_reasons = reasons;
        }
        if let Some(default) = patch.default_wrapup_reason {
            t.codes.default_wrapup_reason = default;
        }
        if let Some(codes) = patch.idle_codes {
            t.codes.idle_codes = codes;
        }
        if codes_touched {
            t.codes.check(&self.deployment)?;
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
        Registry::new(max, Rules::default(), [])
    }

    fn code(c: &str, label: &str) -> Code {
        Code {
            code: c.into(),
            label: label.into(),
        }
    }

    fn codes(list: &[&str]) -> Vec<Code> {
        list.iter().map(|c| code(c, &c.to_uppercase())).collect()
    }

    fn own(reasons: Option<&[&str]>, default: Option<&str>, idle: Option<&[&str]>) -> TenantCodes {
        TenantCodes {
            wrapup_reasons: reasons.map(codes),
            default_wrapup_reason: default.map(str::to_string),
            idle_codes: idle.map(codes),
        }
    }

    fn list(c: &[Code]) -> Vec<&str> {
        c.iter().map(|c| c.code.as_str()).collect()
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
        let t = r
            .create("acme", "Acme", TenantCodes::default(), "h1".into(), 5)
            .expect("created");
        assert_eq!((t.id.as_str(), t.name.as_str(), t.created_ms), ("acme", "Acme", 5));
        // Nothing changes before `put`.
        assert!(r.get("acme").is_err());
        r.put(t);
        for taken in ["acme", DEFAULT_TENANT] {
            let e = r
                .create(taken, "Again", TenantCodes::default(), "h2".into(), 6)
                .unwrap_err();
            assert_eq!(e.code(), "already_exists", "{taken}");
        }
        assert_eq!(
            r.create("Bad Id", "X", TenantCodes::default(), "h".into(), 6)
                .unwrap_err()
                .code(),
            "invalid_input"
        );
        assert_eq!(
            r.create("ok", "  ", TenantCodes::default(), "h".into(), 6)
                .unwrap_err()
                .code(),
            "invalid_input"
        );
        assert_eq!(r.by_admin_credential("h1").map(|t| t.id.as_str()), Some("acme"));
        assert!(r.by_admin_credential("h2").is_none());
    }

    #[test]
    fn max_tenants_counts_default_and_never_drops_a_tenant() {
        let mut r = registry(3);
        for id in ["a", "b"] {
            let t = r
                .create(id, id, TenantCodes::default(), format!("h-{id}"), 1)
                .expect("under the bound");
            r.put(t);
        }
        let e = r.create("c", "c", TenantCodes::default(), "h-c".into(), 1).unwrap_err();
        assert_eq!(e.code(), "tenant_limit");
        assert!(e.to_string().contains("max_tenants"), "{e}");
        // A lowered bound keeps what exists.
        let lowered = Registry::new(1, Rules::default(), r.tenants().cloned().collect::<Vec<_>>());
        assert_eq!(lowered.tenants().count(), 2);
        assert_eq!(
            lowered
                .create("d", "d", TenantCodes::default(), "h".into(), 1)
                .unwrap_err()
                .code(),
            "tenant_limit"
        );
    }

    #[test]
    fn patch_and_reissue_return_the_changed_tenant_only() {
        let mut r = registry(10);
        r.put(
            r.create("acme", "Acme", TenantCodes::default(), "h1".into(), 1)
                .expect("created"),
        );
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
                    ..Default::default()
                },
            )
            .expect("patched");
        assert_eq!((t.name.as_str(), t.limits), ("Acme Ltd", limits));
        assert_eq!(r.get("acme").map(|t| t.name.as_str()), Ok("Acme"), "not before put");
        let bad = TenantPatch {
            name: Some(String::new()),
            ..Default::default()
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
        r.put(
            r.create("acme", "Acme", TenantCodes::default(), "h1".into(), 1)
                .expect("created"),
        );
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

    #[test]
    fn a_list_of_codes_has_1_to_50_unique_ids_with_labels() {
        let deployment = Rules::default();
        let check = |reasons: Vec<Code>| {
            let c = TenantCodes {
                wrapup_reasons: Some(reasons.clone()),
                ..Default::default()
            };
            let idle = TenantCodes {
                idle_codes: Some(reasons),
                ..Default::default()
            };
            let (a, b) = (c.check(&deployment), idle.check(&deployment));
            assert_eq!(a.is_ok(), b.is_ok(), "the same rule for both lists");
            a.map_err(|e| (e.code(), e.to_string()))
        };
        let many = |n: usize| (0..n).map(|i| code(&format!("c{i}"), "L")).collect::<Vec<_>>();
        assert_eq!(check(many(1)), Ok(()));
        assert_eq!(check(many(MAX_CODES)), Ok(()));
        assert_eq!(check(vec![code("a.b-c_D9", &"é".repeat(MAX_NAME_CHARS))]), Ok(()));
        for (bad, says) in [
            (Vec::new(), "1 to 50"),
            (many(MAX_CODES + 1), "1 to 50"),
            (vec![code("has space", "L")], "\"has space\""),
            (vec![code("", "L")], "code \"\""),
            (vec![code(&"x".repeat(65), "L")], "1 to 64"),
            (vec![code("ok", "")], "label of \"ok\""),
            (vec![code("ok", "   ")], "label of \"ok\""),
            (vec![code("ok", &"x".repeat(MAX_NAME_CHARS + 1))], "label of \"ok\""),
            (
                vec![code("ok", "A"), code("no", "B"), code("ok", "C")],
                "\"ok\" is listed twice",
            ),
        ] {
            let (code, message) = check(bad.clone()).expect_err("refused");
            assert_eq!(code, "invalid_input", "{bad:?}");
            assert!(message.contains(says), "{bad:?}: {message}");
        }
        let e = own(None, None, Some(&[])).check(&deployment).unwrap_err();
        assert!(e.to_string().contains("idle_codes"), "names the list: {e}");
    }

    #[test]
    fn a_default_wrapup_reason_is_one_of_the_tenants_reasons() {
        let deployment = Rules::default();
        assert!(own(Some(&["done", "spam"]), Some("spam"), None)
            .check(&deployment)
            .is_ok());
        let e = own(Some(&["done", "spam"]), Some("resolved"), None)
            .check(&deployment)
            .unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        assert!(e.to_string().contains("default_wrapup_reason \"resolved\""), "{e}");
        // With no reasons of its own, the tenant's reasons are the deployment's.
        assert!(own(None, Some("escalated"), None).check(&deployment).is_ok());
        assert!(own(None, Some("done"), None).check(&deployment).is_err());
    }

    #[test]
    fn a_tenants_rules_are_the_deployments_with_its_own_codes() {
        let deployment = Rules {
            offer_timeout_ms: 1234,
            ..Rules::default()
        };
        // Nothing of its own: the deployment's lists, the very same ones.
        let none = TenantCodes::default().effective(&deployment);
        assert!(Arc::ptr_eq(&none.wrapup_reasons, &deployment.wrapup_reasons));
        assert!(Arc::ptr_eq(&none.idle_codes, &deployment.idle_codes));
        assert_eq!(none, deployment.codes());
        // Its own reasons, no default: the deployment's default if listed, else the first.
        let with_other = own(Some(&["done", "other"]), None, None).effective(&deployment);
        assert_eq!(with_other.default_wrapup_reason, "other");
        let without = own(Some(&["done", "spam"]), None, None).effective(&deployment);
        assert_eq!(without.default_wrapup_reason, "done");
        assert_eq!(list(&without.wrapup_reasons), ["done", "spam"]);
        assert_eq!(list(&without.idle_codes), ["break", "meeting", "lunch"]);
        // Its own default.
        let chosen = own(Some(&["done", "spam"]), Some("spam"), Some(&["training"])).effective(&deployment);
        assert_eq!(chosen.default_wrapup_reason, "spam");
        assert_eq!(list(&chosen.idle_codes), ["training"]);
        // A default no longer among the reasons (the config's lists changed since) falls back.
        let stale = own(None, Some("gone"), None).effective(&deployment);
        assert_eq!(stale.default_wrapup_reason, "other");

        let mut r = registry(10);
        let t = r
            .create(
                "acme",
                "Acme",
                own(Some(&["done", "spam"]), Some("spam"), Some(&["training"])),
                "h".into(),
                1,
            )
            .expect("created");
        r.put(t.clone());
        let rules = t.rules(r.deployment());
        assert_eq!(
            rules.offer_timeout_ms,
            Rules::default().offer_timeout_ms,
            "the registry's"
        );
        assert_eq!(rules.codes(), chosen);
        let rules = t.rules(&deployment);
        assert_eq!(rules.offer_timeout_ms, 1234, "everything else is the deployment's");
        assert_eq!(list(&rules.wrapup_reasons), ["done", "spam"]);
    }

    #[test]
    fn create_refuses_bad_codes() {
        let r = registry(10);
        for bad in [
            own(Some(&[]), None, None),
            own(None, None, Some(&["a b"])),
            own(Some(&["done"]), Some("resolved"), None),
            own(None, Some("done"), None),
        ] {
            let e = r.create("acme", "Acme", bad.clone(), "h".into(), 1).unwrap_err();
            assert_eq!(e.code(), "invalid_input", "{bad:?}");
        }
        let good = own(Some(&["done"]), None, Some(&["training"]));
        let t = r.create("acme", "Acme", good.clone(), "h".into(), 1).expect("created");
        assert_eq!(t.codes, good);
    }

    #[test]
    fn patch_replaces_codes_and_none_gives_back_the_deployments() {
        let mut r = registry(10);
        r.put(
            r.create("acme", "Acme", TenantCodes::default(), "h".into(), 1)
                .expect("created"),
        );
        let patch = |r: &mut Registry, p: TenantPatch| {
            let t = r.patch("acme", p)?;
            r.put(t.clone());
            Ok::<_, CoreError>(t.codes)
        };
        let set = TenantPatch {
            wrapup_reasons: Some(Some(codes(&["done", "spam"]))),
            default_wrapup_reason: Some(Some("spam".into())),
            idle_codes: Some(Some(codes(&["training"]))),
            ..Default::default()
        };
        assert_eq!(
            patch(&mut r, set),
            Ok(own(Some(&["done", "spam"]), Some("spam"), Some(&["training"])))
        );
        // A field left out stays; the name alone changes nothing of the codes.
        let renamed = TenantPatch {
            name: Some("Acme Ltd".into()),
            ..Default::default()
        };
        assert_eq!(
            patch(&mut r, renamed),
            Ok(own(Some(&["done", "spam"]), Some("spam"), Some(&["training"])))
        );
        // New reasons without the kept default: refused, nothing changed.
        let before = r.get("acme").cloned();
        let bad = TenantPatch {
            name: Some("Changed".into()),
            wrapup_reasons: Some(Some(codes(&["done", "late"]))),
            ..Default::default()
        };
        let e = r.patch("acme", bad).unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        assert!(e.to_string().contains("\"spam\""), "{e}");
        assert_eq!(r.get("acme").cloned(), before);
        // With the default back to the rule, they are taken.
        let both = TenantPatch {
            wrapup_reasons: Some(Some(codes(&["done", "late"]))),
            default_wrapup_reason: Some(None),
            ..Default::default()
        };
        assert_eq!(
            patch(&mut r, both),
            Ok(own(Some(&["done", "late"]), None, Some(&["training"])))
        );
        // `None` for a list: the deployment's again.
        let back = TenantPatch {
            wrapup_reasons: Some(None),
            idle_codes: Some(None),
            ..Default::default()
        };
        assert_eq!(patch(&mut r, back), Ok(TenantCodes::default()));
        let rules = r.get("acme").map(|t| t.rules(r.deployment()).codes());
        assert_eq!(rules, Ok(Rules::default().codes()));
        // A malformed list is refused as at create.
        let bad = TenantPatch {
            idle_codes: Some(Some(codes(&["x", "x"]))),
            ..Default::default()
        };
        assert_eq!(r.patch("acme", bad).unwrap_err().code(), "invalid_input");
    }

    #[test]
    fn records_without_codes_still_read_and_none_is_not_written() {
        let old = r#"{"id":"acme","name":"Acme","limits":{},"admin_credential":"h","created_ms":5}"#;
        let t: Tenant = serde_json::from_str(old).expect("an old record reads");
        assert_eq!(t.codes, TenantCodes::default());
        let written = serde_json::to_string(&t).expect("encoded");
        for key in ["wrapup_reasons", "default_wrapup_reason", "idle_codes"] {
            assert!(!written.contains(key), "{written}");
        }
        let mut with = t.clone();
        with.codes = own(Some(&["done"]), Some("done"), Some(&["training"]));
        let written = serde_json::to_string(&with).expect("encoded");
        assert!(
            written.contains(r#""wrapup_reasons":[{"code":"done","label":"DONE"}]"#),
            "{written}"
        );
        let read: Tenant = serde_json::from_str(&written).expect("read back");
        assert_eq!(read, with);
    }
}
