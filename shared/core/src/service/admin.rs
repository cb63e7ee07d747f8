//! Administration: tenants and their API keys, by the operator (admin key) or by the tenant itself (a
//! `tenant_admin` key). A key's secret is shown once, in the answer that creates it; a stored idempotent answer
//! never holds it, so a replay answers without it.

use serde::{Deserialize, Serialize};

use super::idempotency::AnswerScope;
use super::{known_id, Idempotency, Principal, Vault};
use crate::apikey;
use crate::error::{Conflict, StoreError, VaultError, VaultResult};
use crate::model::{now_rfc3339, ApiKeyRecord, Tenant};
use crate::roles::{requested_roles, Role};

const MAX_KEY_NAME: usize = 200;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TenantCreated {
    pub tenant_id: String,
    pub name: String,
    pub key_id: String,
    /// The first key's secret: shown once, absent from a replayed answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiKeyCreated {
    pub key_id: String,
    pub tenant_id: String,
    /// Shown once, absent from a replayed answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    pub roles: Vec<Role>,
    pub name: String,
}

/// `POST /api-keys` and `POST /admin/tenants/{id}/api-keys`: the roles (default `["agent"]`) and a label.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiKeyRequest {
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    #[serde(default)]
    pub name: String,
}

/// A key as listed: never its secret or hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiKeyView {
    pub key_id: String,
    pub name: String,
    pub roles: Vec<Role>,
    pub created_at: String,
    pub revoked: bool,
}

impl From<ApiKeyRecord> for ApiKeyView {
    fn from(key: ApiKeyRecord) -> Self {
        ApiKeyView {
            key_id: key.key_id,
            name: key.name,
            roles: key.roles,
            created_at: key.created_at,
            revoked: key.revoked,
        }
    }
}

impl ApiKeyRequest {
    fn checked(&self) -> VaultResult<(Vec<Role>, String)> {
        let roles = match &self.roles {
            None => vec![Role::Agent],
            Some(names) => requested_roles(names)?,
        };
        let name = self.name.trim();
        if name.len() > MAX_KEY_NAME || name.chars().any(char::is_control) {
            return Err(VaultError::InvalidRequest(format!(
                "name must be at most {MAX_KEY_NAME} characters, without control characters"
            )));
        }
        Ok((roles, name.to_string()))
    }
}

fn new_key(tenant_id: &str, secret: &str, roles: Vec<Role>, name: String) -> ApiKeyRecord {
    ApiKeyRecord {
        key_id: apikey::new_id("key_"),
        tenant_id: tenant_id.to_string(),
        key_hash: apikey::hash(secret),
        created_at: now_rfc3339(),
        revoked: false,
        roles,
        name,
    }
}

impl Vault {
    pub async fn create_tenant(
        &self,
        name: &str,
        idem: Option<&Idempotency>,
    ) -> VaultResult<TenantCreated> {
        self.replay(AnswerScope::Admin, idem).await?;
        let name = name.trim();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(VaultError::InvalidRequest(
                "name must be 1 to 200 characters".into(),
            ));
        }
        let tenant = Tenant {
            tenant_id: apikey::new_id("tn_"),
            name: name.to_string(),
            created_at: now_rfc3339(),
        };
        let secret = apikey::generate(apikey::TENANT_KEY_PREFIX);
        self.insert_tenant(tenant, &secret, vec![Role::TenantAdmin], idem)
            .await
    }

    /// Create a tenant whose first key is `api_key` with `roles` (`ledgix dev` and `ledgix tenant create`).
    pub async fn create_tenant_with_key(
        &self,
        tenant: Tenant,
        api_key: &str,
        roles: Vec<Role>,
    ) -> VaultResult<TenantCreated> {
        self.insert_tenant(tenant, api_key, roles, None).await
    }

    async fn insert_tenant(
        &self,
        tenant: Tenant,
        api_key: &str,
        roles: Vec<Role>,
        idem: Option<&Idempotency>,
    ) -> VaultResult<TenantCreated> {
        let key = new_key(&tenant.tenant_id, api_key, roles, "first key".into());
        let body = TenantCreated {
            tenant_id: tenant.tenant_id.clone(),
            name: tenant.name.clone(),
            key_id: key.key_id.clone(),
            api_key: None,
            roles: key.roles.clone(),
        };
        let record = Self::answer(AnswerScope::Admin, idem, 201, &body)?;
        match self
            .ports
            .control
            .create_tenant(&tenant, &key, record.as_ref())
            .await
        {
            Ok(()) => {
                self.principals.invalidate(&key.key_hash);
                Ok(TenantCreated {
                    api_key: Some(api_key.to_string()),
                    ..body
                })
            }
            Err(StoreError::Conflict(Conflict::IdempotencyKey)) => {
                Err(self.replay_after_conflict(AnswerScope::Admin, idem).await)
            }
            Err(StoreError::Conflict(_)) => {
                Err(VaultError::Conflict("tenant or key already exists".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn tenant(&self, tenant_id: &str) -> VaultResult<Option<Tenant>> {
        Ok(self.ports.control.tenant(tenant_id).await?)
    }

    /// The operator adds a key to a tenant (`POST /admin/tenants/{id}/api-keys`); `api_key` fixes the secret
    /// (`ledgix dev`), else one is generated.
    pub async fn create_api_key(
        &self,
        tenant_id: &str,
        api_key: Option<&str>,
        request: &ApiKeyRequest,
        idem: Option<&Idempotency>,
    ) -> VaultResult<ApiKeyCreated> {
        self.replay(AnswerScope::Admin, idem).await?;
        known_id(tenant_id, "tenant")?;
        let (roles, name) = request.checked()?;
        if self.ports.control.tenant(tenant_id).await?.is_none() {
            return Err(VaultError::NotFound("tenant"));
        }
        self.insert_key(tenant_id, api_key, roles, name, AnswerScope::Admin, idem)
            .await
    }

    /// A tenant adds a key of its own (`POST /api-keys`, tenant_admin).
    pub async fn create_tenant_key(
        &self,
        principal: &Principal,
        request: &ApiKeyRequest,
        idem: Option<&Idempotency>,
    ) -> VaultResult<ApiKeyCreated> {
        let scope = AnswerScope::TenantKeys(&principal.tenant_id);
        self.replay(scope, idem).await?;
        let (roles, name) = request.checked()?;
        self.insert_key(&principal.tenant_id, None, roles, name, scope, idem)
            .await
    }

    async fn insert_key(
        &self,
        tenant_id: &str,
        api_key: Option<&str>,
        roles: Vec<Role>,
        name: String,
        scope: AnswerScope<'_>,
        idem: Option<&Idempotency>,
    ) -> VaultResult<ApiKeyCreated> {
        let secret = api_key
            .map(str::to_string)
            .unwrap_or_else(|| apikey::generate(apikey::TENANT_KEY_PREFIX));
        let key = new_key(tenant_id, &secret, roles, name);
        let body = ApiKeyCreated {
            key_id: key.key_id.clone(),
            tenant_id: tenant_id.to_string(),
            api_key: None,
            roles: key.roles.clone(),
            name: key.name.clone(),
        };
        let record = Self::answer(scope, idem, 201, &body)?;
        match self.ports.control.add_api_key(&key, record.as_ref()).await {
            Ok(()) => {
                self.principals.invalidate(&key.key_hash);
                Ok(ApiKeyCreated {
                    api_key: Some(secret),
                    ..body
                })
            }
            Err(StoreError::Conflict(Conflict::IdempotencyKey)) => {
                Err(self.replay_after_conflict(scope, idem).await)
            }
            Err(StoreError::Conflict(_)) => {
                Err(VaultError::Conflict("that key already exists".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant's keys, newest first, without secrets (`GET /api-keys`, tenant_admin).
    pub async fn tenant_keys(&self, principal: &Principal) -> VaultResult<Vec<ApiKeyView>> {
        let keys = self.ports.control.api_keys(&principal.tenant_id).await?;
        Ok(keys.into_iter().map(ApiKeyView::from).collect())
    }

    /// Revoke one of the tenant's own keys (`DELETE /api-keys/{key_id}`, tenant_admin); another tenant's key is
    /// not found.
    pub async fn revoke_tenant_key(&self, principal: &Principal, key_id: &str) -> VaultResult<()> {
        known_id(key_id, "api key")?;
        let owned = self
            .ports
            .control
            .api_keys(&principal.tenant_id)
            .await?
            .iter()
            .any(|k| k.key_id == key_id);
        if !owned {
            return Err(VaultError::NotFound("api key"));
        }
        self.revoke_api_key(key_id).await
    }

    pub async fn revoke_api_key(&self, key_id: &str) -> VaultResult<()> {
        known_id(key_id, "api key")?;
        if self.ports.control.revoke_api_key(key_id).await? {
            self.principals.clear();
            Ok(())
        } else {
            Err(VaultError::NotFound("api key"))
        }
    }
}
