//! What an account sees besides its resources: the credentials check, key
//! pairs (a key must look like an OpenSSH public key), and the fixed
//! catalogue of images and instance types.

use super::*;

impl SandboxConnector {
    pub(crate) async fn do_validate_credentials(&self, creds: &Credentials) -> Result<CredentialCheck, ConnectorError> {
        self.enter(creds, |_, acct| Ok(CredentialCheck { account: Some(acct.to_string()), message: "sandbox account ready".into() })).await
    }

    pub(crate) async fn do_import_key_pair(
        &self,
        creds: &Credentials,
        name: &str,
        public_key: &str,
    ) -> Result<KeyPairInfo, ConnectorError> {
        self.enter(creds, |w, acct| {
            let keys = w.keys.entry(acct.to_string()).or_default();
            if keys.contains_key(name) {
                return Err(ConnectorError::InvalidRequest {
                    code: "InvalidKeyPair.Duplicate".into(),
                    message: format!("The keypair '{name}' already exists."),
                });
            }
            let fp = fingerprint(public_key)?;
            keys.insert(name.to_string(), fp.clone());
            Ok(KeyPairInfo { name: name.to_string(), fingerprint: Some(fp) })
        })
        .await
    }

    pub(crate) async fn do_delete_key_pair(&self, creds: &Credentials, name: &str) -> Result<(), ConnectorError> {
        self.enter(creds, |w, acct| {
            if let Some(k) = w.keys.get_mut(acct) {
                k.remove(name);
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn do_list_key_pairs(&self, creds: &Credentials) -> Result<Vec<KeyPairInfo>, ConnectorError> {
        self.enter(creds, |w, acct| {
            Ok(w.keys
                .get(acct)
                .map(|k| k.iter().map(|(n, f)| KeyPairInfo { name: n.clone(), fingerprint: Some(f.clone()) }).collect())
                .unwrap_or_default())
        })
        .await
    }

    pub(crate) async fn do_list_images(&self, creds: &Credentials) -> Result<Vec<ImageInfo>, ConnectorError> {
        self.enter(creds, |w, acct| {
            Ok(IMAGES
                .iter()
                .map(|(id, name)| ImageInfo {
                    id: id.to_string(),
                    name: Some(name.to_string()),
                    description: None,
                    state: Some("available".into()),
                })
                .chain(w.images.values().filter(|i| i.account == acct).map(|i| i.info.clone()))
                .collect())
        })
        .await
    }

    pub(crate) async fn do_list_instance_types(&self, creds: &Credentials) -> Result<Vec<InstanceTypeInfo>, ConnectorError> {
        self.enter(creds, |_, _| {
            Ok(INSTANCE_TYPES
                .iter()
                .map(|(n, c, m)| InstanceTypeInfo { name: n.to_string(), vcpus: Some(*c), memory_mib: Some(*m) })
                .collect())
        })
        .await
    }
}

/// A stand-in fingerprint: the key must look like an OpenSSH public key.
pub(crate) fn fingerprint(public_key: &str) -> Result<String, ConnectorError> {
    let mut parts = public_key.split_whitespace();
    let (Some(algo), Some(body)) = (parts.next(), parts.next()) else {
        return Err(ConnectorError::InvalidRequest {
            code: "InvalidKey.Format".into(),
            message: "Key is not in valid OpenSSH public key format".into(),
        });
    };
    if !algo.starts_with("ssh-") && !algo.starts_with("ecdsa-") || body.len() < 16 {
        return Err(ConnectorError::InvalidRequest {
            code: "InvalidKey.Format".into(),
            message: "Key is not in valid OpenSSH public key format".into(),
        });
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let bytes = h.to_be_bytes();
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
}
