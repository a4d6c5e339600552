//! The providers file (`--providers-file`): identity providers declared in TOML,
//! created or updated by name at every start, through the same checks as the admin
//! API. Secrets stay out of the file: a client secret is named by the environment
//! variable holding it, and SAML metadata may be read from its own file.
//!
//! ```toml
//! [[oidc]]
//! name = "corp"
//! issuer_url = "https://login.example.com"
//! client_id = "gatekey"
//! client_secret_env = "CORP_OIDC_SECRET"
//! admin_group = "vpn-admins"
//!
//! [[saml]]
//! name = "adfs"
//! metadata_file = "/etc/gatekey/adfs-metadata.xml"
//! groups_attribute = "groups"
//! ```

use crate::context::CoreContext;
use crate::services::AdminAuthProviderApi;
use gatekey::v1::AuthProvider;
use serde::Deserialize;
use std::error::Error;
use std::path::Path;
use std::sync::Arc;

/// One `[[oidc]]` or `[[saml]]` table; the fields of the other kind must stay unset.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Declared {
    name: String,
    #[serde(default)]
    admin_group: String,
    #[serde(default)]
    allowed_groups: Vec<String>,
    #[serde(default)]
    link_by_email: bool,
    /// The claim (OIDC) or attribute (SAML) holding group names.
    #[serde(default, alias = "groups_attribute")]
    groups_claim: String,
    // OIDC.
    #[serde(default)]
    issuer_url: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret_env: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    allow_unverified_email: bool,
    // SAML: the IdP metadata inline or in a file, and the SP entity id.
    #[serde(default)]
    metadata: Option<String>,
    #[serde(default)]
    metadata_file: Option<std::path::PathBuf>,
    #[serde(default)]
    entity_id: Option<String>,
}

/// The file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvidersFile {
    #[serde(default)]
    oidc: Vec<Declared>,
    #[serde(default)]
    saml: Vec<Declared>,
}

impl Declared {
    /// The provider as the admin API takes it.
    fn into_message(self, kind: &str, file: &str) -> Result<AuthProvider, String> {
        let name = self.name.clone();
        let wrong = |field: &str| Err(format!("{file}: `{name}`: `{field}` does not belong in a [[{kind}]] table"));
        let mut message = AuthProvider {
            name: self.name,
            r#type: kind.into(),
            admin_group: self.admin_group,
            allowed_groups: self.allowed_groups,
            link_by_email: self.link_by_email,
            groups_claim: self.groups_claim,
            ..Default::default()
        };
        if kind == "oidc" {
            if self.metadata.is_some() || self.metadata_file.is_some() || self.entity_id.is_some() {
                return wrong("metadata, metadata_file or entity_id");
            }
            message.issuer_url = self.issuer_url.unwrap_or_default();
            message.client_id = self.client_id.unwrap_or_default();
            message.scopes = self.scopes;
            message.allow_unverified_email = self.allow_unverified_email;
            if let Some(variable) = &self.client_secret_env {
                message.client_secret =
                    std::env::var(variable).map_err(|_| format!("{file}: `{name}`: ${variable} is not set"))?;
            }
            return Ok(message);
        }
        if self.issuer_url.is_some() || self.client_id.is_some() || self.client_secret_env.is_some() {
            return wrong("issuer_url, client_id or client_secret_env");
        }
        if !self.scopes.is_empty() || self.allow_unverified_email {
            return wrong("scopes or allow_unverified_email");
        }
        message.saml_idp_metadata = match (self.metadata, &self.metadata_file) {
            (Some(inline), None) => inline,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("{file}: `{name}`: cannot read {}: {e}", path.display()))?,
            _ => return Err(format!("{file}: `{name}` needs one of metadata and metadata_file")),
        };
        message.saml_entity_id = self.entity_id.unwrap_or_default();
        Ok(message)
    }
}

/// Reads `path` and creates or updates every provider it declares; nothing is saved
/// unless every declaration reads well.
pub async fn apply(context: &Arc<CoreContext>, path: &Path) -> Result<(), Box<dyn Error + Send + Sync>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {file}: {e}"))?;
    let declared: ProvidersFile = toml::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
    let oidc = declared.oidc.into_iter().map(|provider| provider.into_message("oidc", &file));
    let saml = declared.saml.into_iter().map(|provider| provider.into_message("saml", &file));
    let providers = oidc.chain(saml).collect::<Result<Vec<_>, _>>()?;
    let api = AdminAuthProviderApi(context.clone());
    for provider in providers {
        let existing = context.store.find_auth_provider_by_name(&provider.name).await?;
        api.save(&provider, existing.as_ref())
            .await
            .map_err(|e| format!("{file}: provider `{}`: {e}", provider.name))?;
        tracing::info!(provider = %provider.name, kind = %provider.r#type, "identity provider applied from the providers file");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(toml: &str) -> ProvidersFile {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn each_kind_takes_its_own_fields_only() {
        let file = declared(
            "[[oidc]]\nname = \"a\"\nissuer_url = \"https://a\"\nclient_id = \"c\"\n\
             [[saml]]\nname = \"b\"\nmetadata = \"<x/>\"\ngroups_attribute = \"roles\"\n",
        );
        let oidc = file.oidc.into_iter().next().unwrap().into_message("oidc", "f").unwrap();
        assert_eq!((oidc.issuer_url.as_str(), oidc.client_id.as_str()), ("https://a", "c"));
        let saml = file.saml.into_iter().next().unwrap().into_message("saml", "f").unwrap();
        assert_eq!((saml.saml_idp_metadata.as_str(), saml.groups_claim.as_str()), ("<x/>", "roles"));

        let misplaced = declared("[[saml]]\nname = \"b\"\nmetadata = \"<x/>\"\nissuer_url = \"https://a\"\n");
        let error = misplaced.saml.into_iter().next().unwrap().into_message("saml", "f").unwrap_err();
        assert!(error.contains("issuer_url"), "{error}");
        let bare = declared("[[saml]]\nname = \"b\"\n");
        assert!(bare.saml.into_iter().next().unwrap().into_message("saml", "f").unwrap_err().contains("metadata"));
        assert!(toml::from_str::<ProvidersFile>("[[saml]]\nname = \"b\"\nmetdata = \"typo\"\n").is_err());
    }
}
