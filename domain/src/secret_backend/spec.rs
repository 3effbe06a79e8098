use schemars::JsonSchema;
use serde::Deserialize;

use crate::document::{Kind, SpecInput};
use crate::llm::{SecretKeyRef, SecretKeyRefInput};
use crate::name::ResourceName;
use crate::secret::check_key_name;
use crate::validation::{ValidationErrors, check_http_url, is_blank, patterns};
pub use wire::secret_backend::{BackendType, OpenBaoConfig, SecretBackendSpec};

/// A backend document's spec and what it asks of the default flag: `Some(true)` make it the
/// default, `Some(false)` it must not be the default, `None` leave the flag as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretBackendRequest {
    pub spec: SecretBackendSpec,
    pub is_default: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("allOf" = [
    {"if": {"properties": {"url": {"pattern": "^http://"}}},
     "then": {"properties": {"caCert": {"pattern": BLANK}, "tlsServerName": {"maxLength": 0}}}},
    {"if": {"required": ["tlsServerName"], "properties": {"tlsServerName": {"type": "string", "minLength": 1}}},
     "then": {"properties": {"url": {"pattern": ip_url_pattern()}}}},
]))]
pub struct OpenBaoConfigInput {
    /// The server: an http:// or https:// URL.
    #[schemars(with = "String", extend("pattern" = patterns::HTTP_URL))]
    pub url: Option<String>,
    /// KV v2 mount; `secret` when omitted.
    #[schemars(extend("pattern" = mount_pattern()))]
    pub mount: Option<String>,
    /// Prefix of every secret's path under the mount, ending in `/`; `mcpd/` when omitted,
    /// empty for the mount's root.
    #[schemars(extend("pattern" = path_prefix_pattern()))]
    pub path_prefix: Option<String>,
    /// Sent as `X-Vault-Namespace`.
    #[schemars(extend("pattern" = namespace_pattern()))]
    pub namespace: Option<String>,
    /// The plaintext Secret key holding the token mcpd authenticates with.
    #[schemars(with = "SecretKeyRefInput")]
    pub token_secret_ref: Option<SecretKeyRefInput>,
    /// Seconds each call to the server may take (1-60); 10 when omitted.
    #[schemars(range(min = 1, max = 60))]
    #[serde(default, deserialize_with = "crate::validation::whole_number")]
    pub timeout_seconds: Option<u64>,
    /// Mark deleted secrets' latest version deleted instead of removing every version.
    pub soft_delete: Option<bool>,
    /// PEM certificate(s) of the CA that signed the server's certificate, for an https:// url
    /// whose CA the system does not trust. Checked when written: text that holds no usable
    /// certificate is refused (format `pem-certificates`, which a pattern cannot spell out).
    #[schemars(extend("format" = "pem-certificates"))]
    pub ca_cert: Option<String>,
    /// The DNS name to check the server's certificate against, for an https:// url that names
    /// the server by IP address.
    #[schemars(extend("pattern" = r"^([A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*)?$", "maxLength" = 253))]
    pub tls_server_name: Option<String>,
}

/// A path segment as OpenBao mounts and prefixes take it.
const SEGMENT: &str = "[A-Za-z0-9_-][A-Za-z0-9._-]*";

/// [`segments`] for a mount: no trailing `/`.
fn mount_pattern() -> String {
    format!("^{SEGMENT}(/{SEGMENT})*$")
}

/// [`segments`] for a path prefix: each segment ends in `/`; empty for the mount's root.
fn path_prefix_pattern() -> String {
    format!("^({SEGMENT}/)*$")
}

/// [`segments`] for a namespace: a trailing `/` or not; empty for none.
fn namespace_pattern() -> String {
    format!("^({SEGMENT}(/{SEGMENT})*/?)?$")
}
const BLANK: &str = r"^[\s\x00-\x1f\x7f-\x9f]*$";
/// An IPv4 address as std reads one: four decimal octets, no leading zeros.
const IPV4: &str = r"((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
/// A port as [`url_ip`] reads one: 0-65535, no leading zeros.
const PORT: &str = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)";

/// An IPv6 address as std reads one: RFC 3986's `IPv6address` (at most one `::`, an IPv4
/// address in the last 32 bits), with no zone.
fn ipv6_pattern() -> String {
    let h16 = "[0-9A-Fa-f]{1,4}";
    let ls32 = format!("({h16}:{h16}|{IPV4})");
    // Up to `n` groups before a `::`.
    let before = |n: usize| format!("(({h16}:){{0,{}}}{h16})?", n - 1);
    [
        format!("({h16}:){{6}}{ls32}"),
        format!("::({h16}:){{5}}{ls32}"),
        format!("{}::({h16}:){{4}}{ls32}", before(1)),
        format!("{}::({h16}:){{3}}{ls32}", before(2)),
        format!("{}::({h16}:){{2}}{ls32}", before(3)),
        format!("{}::{h16}:{ls32}", before(4)),
        format!("{}::{ls32}", before(5)),
        format!("{}::{h16}", before(6)),
        format!("{}::", before(7)),
    ]
    .join("|")
}

/// An https:// URL naming its server by IP address, exactly as [`url_ip`] reads one.
fn ip_url_pattern() -> String {
    format!(r"^https://({IPV4}|\[({})\])(:{PORT})?([/?#][!-~]*)?$", ipv6_pattern())
}

/// `path` is `/`-separated [`SEGMENT`]s, ending with a `/` when `trailing` says so (either way
/// for `None`).
fn segments(path: &str, trailing: Option<bool>) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    let body = match (path.strip_suffix('/'), trailing) {
        (Some(body), Some(true) | None) => body,
        (None, Some(false) | None) => path,
        _ => return false,
    };
    body.split('/').all(ok)
}

/// A SecretBackend document's spec fields as a client sends them.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("allOf" = [
    {"if": {"properties": {"type": {"const": "plaintext"}}}, "then": {"properties": {"config": {"type": "null"}}}},
    {"if": {"properties": {"type": {"const": "openbao"}}},
     "then": {"required": ["config"], "properties": {"config": {"type": "object"}}}},
]))]
pub struct SecretBackendInput {
    /// plaintext | openbao
    #[serde(rename = "type")]
    #[schemars(with = "BackendType")]
    pub backend_type: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Whether new secrets without an explicit backend go here.
    pub is_default: Option<bool>,
    /// Backend-specific settings; none for plaintext.
    pub config: Option<OpenBaoConfigInput>,
}

impl OpenBaoConfigInput {
    fn validate(self, errors: &mut ValidationErrors) -> Option<OpenBaoConfig> {
        let url = errors.required("spec.config.url", self.url);
        if let Some(url) = &url {
            check_http_url(errors, "spec.config.url", url);
        }
        let token_secret_ref = match self.token_secret_ref {
            None => {
                errors.add("spec.config.tokenSecretRef", "is required");
                None
            }
            Some(r) => {
                let name = errors.required("spec.config.tokenSecretRef.name", r.name).and_then(|n| {
                    ResourceName::parse(&n).map_err(|m| errors.add("spec.config.tokenSecretRef.name", m)).ok()
                });
                let key = errors
                    .required("spec.config.tokenSecretRef.key", r.key)
                    .filter(|k| check_key_name(errors, "spec.config.tokenSecretRef.key", k));
                name.zip(key).map(|(name, key)| SecretKeyRef { name, key })
            }
        };
        let mount = self.mount.unwrap_or_else(|| "secret".into());
        if !segments(&mount, Some(false)) {
            errors.add(
                "spec.config.mount",
                format!("must be a mount path such as secret or kv/team ({SEGMENT} segments)"),
            );
        }
        let timeout_seconds = self.timeout_seconds.unwrap_or(OpenBaoConfig::DEFAULT_TIMEOUT_SECONDS);
        if !(1..=OpenBaoConfig::MAX_TIMEOUT_SECONDS).contains(&timeout_seconds) {
            errors.add("spec.config.timeoutSeconds", format!("must be 1 to {}", OpenBaoConfig::MAX_TIMEOUT_SECONDS));
        }
        let path_prefix = self.path_prefix.unwrap_or_else(|| "mcpd/".into());
        if !path_prefix.is_empty() && !segments(&path_prefix, Some(true)) {
            errors.add("spec.config.pathPrefix", "must be a relative path ending in '/' such as mcpd/ or teams/ml/");
        }
        let namespace = self.namespace.filter(|n| !n.is_empty());
        if namespace.as_deref().is_some_and(|n| !segments(n, None)) {
            errors.add("spec.config.namespace", "must be a namespace path such as team-a or admin/team-a/");
        }
        let https = url.as_deref().is_some_and(|u| u.starts_with("https://"));
        let ca_cert = self.ca_cert.filter(|c| !is_blank(c));
        if let Some(ca) = &ca_cert {
            if !https {
                errors.add("spec.config.caCert", "applies to an https:// url only");
            } else if !ca.contains("-----BEGIN CERTIFICATE-----") {
                errors.add("spec.config.caCert", "must be PEM text holding -----BEGIN CERTIFICATE----- blocks");
            }
        }
        let tls_server_name = self.tls_server_name.filter(|n| !n.is_empty());
        if let Some(name) = &tls_server_name {
            let dns = name.len() <= 253
                && name.split('.').all(|l| {
                    !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !https {
                errors.add("spec.config.tlsServerName", "applies to an https:// url only");
            } else if !dns {
                errors.add("spec.config.tlsServerName", "must be a DNS name such as bao.internal");
            } else if url.as_deref().and_then(url_ip).is_none() {
                errors.add("spec.config.tlsServerName", "needs a url that names the server by IP address");
            }
        }
        Some(OpenBaoConfig {
            url: url?.trim_end_matches('/').to_owned(),
            mount,
            path_prefix,
            namespace,
            token_secret_ref: token_secret_ref?,
            timeout_seconds,
            soft_delete: self.soft_delete.unwrap_or(false),
            ca_cert,
            tls_server_name,
        })
    }
}

/// The IP address and port an `https://IP[:port]/…` URL names, if it names one: an IPv4
/// address, or an IPv6 address in brackets, then a port of 0-65535 without leading zeros.
pub fn url_ip(url: &str) -> Option<std::net::SocketAddr> {
    use std::net::{IpAddr, SocketAddr};
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (ip, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, port) = bracketed.split_once(']')?;
            (IpAddr::V6(host.parse().ok()?), port)
        }
        None => {
            let host = authority.split(':').next()?;
            (IpAddr::V4(host.parse().ok()?), &authority[host.len()..])
        }
    };
    let port = match port {
        "" => 443,
        _ => {
            let digits = port.strip_prefix(':')?;
            let plain = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            if !plain || (digits.starts_with('0') && digits != "0") {
                return None;
            }
            digits.parse().ok()?
        }
    };
    Some(SocketAddr::new(ip, port))
}

impl SpecInput for SecretBackendInput {
    type Spec = SecretBackendRequest;
    const KIND: Kind = Kind::SecretBackend;

    fn validate(self, errors: &mut ValidationErrors) -> Option<SecretBackendRequest> {
        let backend_type = errors.one_of("spec.type", self.backend_type, &["plaintext", "openbao"], BackendType::parse);
        let config = match (backend_type, self.config) {
            (Some(BackendType::Plaintext), Some(_)) => {
                errors.add("spec.config", "plaintext backends take no config");
                None
            }
            (Some(BackendType::Openbao), None) => {
                errors.add("spec.config", "is required for type openbao");
                None
            }
            (Some(BackendType::Openbao), Some(config)) => config.validate(errors),
            _ => None,
        };
        errors.is_empty().then(|| SecretBackendRequest {
            spec: SecretBackendSpec {
                backend_type: backend_type.unwrap_or(BackendType::Plaintext),
                description: self.description.unwrap_or_default(),
                config,
            },
            is_default: self.is_default,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openbao_config_is_checked_field_by_field() {
        let input: SecretBackendInput =
            serde_json::from_str(r#"{"type": "openbao", "config": {"url": "nope", "tokenSecretRef": {"name": "t"}}}"#)
                .unwrap();
        let mut errors = ValidationErrors::default();
        assert!(input.validate(&mut errors).is_none());
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.config.url", "spec.config.tokenSecretRef.key"]);
    }

    #[test]
    fn openbao_config_gets_its_defaults() {
        let input: SecretBackendInput = serde_json::from_str(
            r#"{"type": "openbao", "isDefault": true, "config": {"url": "http://127.0.0.1:8200/", "tokenSecretRef": {"name": "t", "key": "token"}}}"#,
        )
        .unwrap();
        let mut errors = ValidationErrors::default();
        let request = input.validate(&mut errors).unwrap_or_else(|| panic!("{errors}"));
        let config = request.spec.config.unwrap();
        assert_eq!(
            (config.url.as_str(), config.mount.as_str(), config.path_prefix.as_str()),
            ("http://127.0.0.1:8200", "secret", "mcpd/")
        );
        assert_eq!((config.timeout_seconds, config.soft_delete), (10, false));
        assert_eq!(request.is_default, Some(true));
    }

    #[test]
    fn the_path_patterns_say_what_the_checks_take() {
        let cases =
            ["", "secret", "kv/team", "mcpd/", "teams/ml/", "/x", "x//y", "x/", ".hidden", "a..b", "a b", "ns-1/"];
        for (pattern, trailing, empty_ok) in [
            (mount_pattern(), Some(false), false),
            (path_prefix_pattern(), Some(true), true),
            (namespace_pattern(), None, true),
        ] {
            let pattern = regex::Regex::new(&pattern).unwrap();
            for raw in cases {
                let checked = if raw.is_empty() { empty_ok } else { segments(raw, trailing) };
                assert_eq!(pattern.is_match(raw), checked, "{raw:?} against {pattern}");
            }
        }
    }

    #[test]
    fn timeouts_are_bounded() {
        let input: SecretBackendInput = serde_json::from_str(
            r#"{"type": "openbao", "config": {"url": "http://h", "timeoutSeconds": 600, "tokenSecretRef": {"name": "t", "key": "k"}}}"#,
        )
        .unwrap();
        let mut errors = ValidationErrors::default();
        assert!(input.validate(&mut errors).is_none());
        assert_eq!(errors.0[0].field, "spec.config.timeoutSeconds");
    }

    #[test]
    fn tls_settings_need_https_pem_and_an_ip_url() {
        let parse = |config: &str| {
            let input: SecretBackendInput = serde_json::from_str(&format!(
                r#"{{"type": "openbao", "config": {{"tokenSecretRef": {{"name": "t", "key": "k"}}, {config}}}}}"#
            ))
            .unwrap();
            let mut errors = ValidationErrors::default();
            let spec = input.validate(&mut errors);
            (spec, errors.0.iter().map(|e| e.field.clone()).collect::<Vec<_>>())
        };
        let pem = "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n";
        let (spec, fields) =
            parse(&format!(r#""url": "https://127.0.0.1:8200", "caCert": "{pem}", "tlsServerName": "bao.internal""#));
        assert!(fields.is_empty(), "{fields:?}");
        assert_eq!(spec.unwrap().spec.config.unwrap().tls_server_name.as_deref(), Some("bao.internal"));
        let (_, fields) = parse(&format!(r#""url": "http://127.0.0.1:8200", "caCert": "{pem}""#));
        assert_eq!(fields, ["spec.config.caCert"]);
        let (_, fields) = parse(r#""url": "https://h:8200", "caCert": "not pem", "tlsServerName": "bao.internal""#);
        assert_eq!(fields, ["spec.config.caCert", "spec.config.tlsServerName"]);
        let (_, fields) = parse(r#""url": "https://[::1]:8200", "tlsServerName": "bad name""#);
        assert_eq!(fields, ["spec.config.tlsServerName"]);
        assert_eq!(url_ip("https://[::1]:8200/x"), "[::1]:8200".parse().ok());
        assert_eq!(url_ip("https://10.0.0.1"), "10.0.0.1:443".parse().ok());
        assert_eq!(url_ip("https://bao.internal:8200"), None);
        // Only what the URL's host and port spell exactly.
        for loose in ["https://::1", "https://[1.2.3.4]", "https://1.2.3.4]", "https://[::1", "https://1.2.3.4:08200"] {
            assert_eq!(url_ip(loose), None, "{loose}");
        }
    }

    /// The `then` rule of the published schema says which URLs `tlsServerName` may go with:
    /// exactly those [`url_ip`] reads. Checked on hand-picked cases and on every string a small
    /// grammar of hosts, groups and ports spells.
    #[test]
    fn the_ip_url_pattern_says_what_url_ip_takes() {
        let pattern = regex::Regex::new(&ip_url_pattern()).unwrap();
        let agree = |url: &str| {
            assert_eq!(pattern.is_match(url), url_ip(url).is_some(), "{url} against the pattern and url_ip");
        };
        for url in [
            "https://127.0.0.1:8200",
            "https://10.0.0.1",
            "https://10.0.0.1/v1?x#y",
            "https://[::1]:8200/x",
            "https://[::]",
            "https://[::ffff:192.0.2.1]:443",
            "https://[2001:DB8::1]",
            "https://[1:2:3:4:5:6:7:8]",
            "https://[1:2:3:4:5:6:7::]",
            "https://[::2:3:4:5:6:7:8]",
            "https://[1:2:3:4:5:6:1.2.3.4]",
            "https://[1::2:3:4:5:6:7:8]",
            "https://[1:2:3:4:5:6:7:8:9]",
            "https://[1::2::3]",
            "https://[00001::]",
            "https://[fe80::1%25eth0]",
            "https://[::1]8200",
            "https://01.2.3.4",
            "https://1.2.3",
            "https://256.1.1.1",
            "https://1.2.3.4:65535",
            "https://1.2.3.4:65536",
            "https://1.2.3.4:0",
            "https://1.2.3.4:",
            "https://bao.internal",
            "http://1.2.3.4",
        ] {
            agree(url);
        }
        // Every IPv6 text of up to 9 parts, each a group, an empty part (which makes `::`) or
        // an IPv4 address: where a `::` or an IPv4 part may go, and how many groups fit.
        let parts = ["0", "", "1.2.3.4"];
        let mut texts = vec![String::new()];
        for _ in 0..9 {
            let mut longer = Vec::new();
            for text in &texts {
                for part in parts {
                    longer.push(if text.is_empty() { format!(":{part}") } else { format!("{text}:{part}") });
                }
            }
            for text in &longer {
                agree(&format!("https://[{}]", &text[1..]));
            }
            texts = longer.into_iter().filter(|t| t.len() < 40).collect();
        }
        for port in ["", ":0", ":1", ":00", ":65535", ":99999", ":x"] {
            agree(&format!("https://[::1]{port}"));
            agree(&format!("https://192.168.0.1{port}"));
        }
    }

    #[test]
    fn plaintext_takes_no_config() {
        let input: SecretBackendInput = serde_json::from_str(r#"{"type": "plaintext", "config": {}}"#).unwrap();
        let mut errors = ValidationErrors::default();
        assert!(input.validate(&mut errors).is_none());
        assert_eq!(errors.0[0].field, "spec.config");
    }
}
