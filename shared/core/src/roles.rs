//! Who may do what: the roles an API key carries. The agent is the party the vault guards against, so the
//! duties that hold it to its rules (deciding its reviews, writing its policies) belong to other keys.

use serde::{Deserialize, Serialize};

use crate::error::{VaultError, VaultResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Asks for clearance, polls its own requests, mints from cached rule approvals, may cancel its own review.
    Agent,
    /// A protected service: consumes tokens.
    Consumer,
    /// Lists pending reviews and decides them (never its own request).
    Reviewer,
    /// Policies, review settings, the tenant's keys, usage.
    TenantAdmin,
    /// Reads the ledger, checkpoints and proofs.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Agent,
        Role::Consumer,
        Role::Reviewer,
        Role::TenantAdmin,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Consumer => "consumer",
            Role::Reviewer => "reviewer",
            Role::TenantAdmin => "tenant_admin",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Roles as stored (`agent,consumer`); `None` is a key made before roles existed, which keeps every role.
    pub fn parse_stored(stored: Option<&str>) -> Vec<Role> {
        match stored {
            None => Role::ALL.to_vec(),
            Some(text) => text.split(',').filter_map(Role::parse).collect(),
        }
    }

    pub fn to_stored(roles: &[Role]) -> String {
        roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The roles a new key asks for: at least one, each known, no repeats (sorted, so storage is canonical).
pub fn requested_roles(names: &[String]) -> VaultResult<Vec<Role>> {
    if names.is_empty() {
        return Err(VaultError::InvalidRequest(
            "roles must name at least one of agent, consumer, reviewer, tenant_admin, auditor"
                .into(),
        ));
    }
    let mut roles = Vec::with_capacity(names.len());
    for name in names {
        let role = Role::parse(name).ok_or_else(|| {
            VaultError::InvalidRequest(format!(
                "unknown role {name:?}: use agent, consumer, reviewer, tenant_admin or auditor"
            ))
        })?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    roles.sort();
    Ok(roles)
}

/// Refuse a caller without any of `needed` (403 `forbidden_role`, naming them).
pub fn require_any(held: &[Role], needed: &[Role]) -> VaultResult<()> {
    if needed.iter().any(|r| held.contains(r)) {
        Ok(())
    } else {
        Err(VaultError::ForbiddenRole(
            needed
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_roles_round_trip_and_old_keys_keep_every_role() {
        let roles = vec![Role::Agent, Role::Consumer];
        assert_eq!(Role::parse_stored(Some(&Role::to_stored(&roles))), roles);
        assert_eq!(Role::parse_stored(None), Role::ALL.to_vec());
    }

    #[test]
    fn requested_roles_are_checked_and_canonical() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            requested_roles(&names(&["reviewer", "agent", "agent"])).expect("valid"),
            vec![Role::Agent, Role::Reviewer]
        );
        assert!(requested_roles(&names(&[])).is_err());
        assert!(requested_roles(&names(&["root"])).is_err());
    }

    #[test]
    fn require_any_names_the_roles_needed() {
        assert!(require_any(&[Role::Agent], &[Role::Agent, Role::Auditor]).is_ok());
        match require_any(&[Role::Agent], &[Role::Reviewer]) {
            Err(VaultError::ForbiddenRole(needed)) => assert_eq!(needed, "reviewer"),
            other => panic!("expected forbidden_role, got {other:?}"),
        }
    }
}
