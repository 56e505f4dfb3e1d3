//! `CreateKeyPair`'s `KeyType` (`ed25519`, the default, or `rsa`: both
//! made by the broker) and `KeyFormat` (`pem`, the default: the private
//! key in OpenSSH's PEM armour, which OpenSSH and paramiko read; `ppk` is
//! refused by name, as the broker writes no PuTTY files).

use crate::error::Ec2Error;
use crate::ids::shown;
use crate::request::Params;
use cloudbroker_core::key_pairs::KeyType;

/// The kind of pair `CreateKeyPair` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyKindInput {
    pub key_type: KeyType,
}

impl KeyKindInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let key_type = match params.get("KeyType") {
            None => KeyType::default(),
            Some(v) => KeyType::parse(v)
                .ok_or_else(|| Ec2Error::invalid(format!("Value ({}) for parameter KeyType is invalid: rsa or ed25519", shown(v))))?,
        };
        match params.get("KeyFormat") {
            None | Some("pem") => {}
            Some("ppk") => {
                return Err(Ec2Error::client(
                    "UnsupportedOperation",
                    "The parameter KeyFormat (ppk) is not supported by this broker: its private keys are pem (OpenSSH) only",
                ))
            }
            Some(v) => return Err(Ec2Error::invalid(format!("Value ({}) for parameter KeyFormat is invalid: pem or ppk", shown(v)))),
        }
        Ok(Self { key_type })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kv: &[(&str, &str)]) -> Params {
        Params::new(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap()
    }

    #[test]
    fn key_types_and_formats() {
        assert_eq!(KeyKindInput::parse(&p(&[])).unwrap().key_type, KeyType::Ed25519);
        assert_eq!(KeyKindInput::parse(&p(&[("KeyType", "rsa"), ("KeyFormat", "pem")])).unwrap().key_type, KeyType::Rsa);
        assert_eq!(KeyKindInput::parse(&p(&[("KeyType", "dsa")])).unwrap_err().code, "InvalidParameterValue");
        assert_eq!(KeyKindInput::parse(&p(&[("KeyFormat", "ppk")])).unwrap_err().code, "UnsupportedOperation");
        assert_eq!(KeyKindInput::parse(&p(&[("KeyFormat", "der")])).unwrap_err().code, "InvalidParameterValue");
    }
}
