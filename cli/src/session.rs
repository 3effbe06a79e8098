//! Who and where mcpctl talks to: `login`, `config`, `auth can-i`, `auth whoami`, `version`.

use crate::args::Cli;
use crate::client::Client;
use crate::config;

/// `mcpctl version`: the client's, then the server's.
pub fn version(client: &Client) -> anyhow::Result<u8> {
    out!("Client Version: {}", env!("CARGO_PKG_VERSION"));
    let server = client.get("/version")?.into_success()?;
    out!("Server Version: {}", server["version"].as_str().unwrap_or("unknown"));
    out!("Server: {}", client.base);
    Ok(0)
}

/// `mcpctl auth can-i VERB [KIND[/NAME]] [NAME]`: prints yes or no; whether it is allowed.
pub fn can_i(client: &Client, verb: String, kind: Option<String>, name: Option<String>) -> anyhow::Result<bool> {
    // kubectl style: `llm/claude-fast` names the resource in one word.
    let (kind, name) = match kind.as_deref().and_then(|k| k.split_once('/')) {
        Some(_) if name.is_some() => anyhow::bail!("give KIND NAME or KIND/NAME, not both"),
        Some((k, n)) => (Some(k.to_owned()), Some(n.to_owned())),
        None => (kind, name),
    };
    let mut query = vec![("verb", verb.clone())];
    if let Some(kind) = &kind {
        // kubectl style: a kind's singular, plural or short name, any case; or an RBAC
        // resource that is no kind (`rbac`, `audit`).
        let lower = kind.to_ascii_lowercase();
        let resource = match wire::Kind::parse(&lower) {
            Some(kind) => kind.info().rbac_resource.to_owned(),
            None if wire::RBAC_RESOURCES.contains(&lower.as_str()) => lower,
            None => anyhow::bail!("unknown kind {kind:?}"),
        };
        query.push(("resource", resource));
    } else if !verb.contains(':') {
        anyhow::bail!("give a kind (mcpctl auth can-i {verb} llms), or an operation such as reveal:secrets");
    }
    if let Some(name) = name {
        query.push(("name", name));
    }
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&query).finish();
    let answer = client.get(&format!("/api/v1/auth/can-i?{encoded}"))?.into_success()?;
    let allowed = answer["allowed"] == serde_json::Value::Bool(true);
    out!("{}", if allowed { "yes" } else { "no" });
    Ok(allowed)
}

/// `mcpctl auth whoami`.
pub fn whoami(client: &Client) -> anyhow::Result<u8> {
    let me = client.get("/api/v1/whoami")?.into_success()?;
    out!("{} (token {})", me["user"].as_str().unwrap_or("?"), me["tokenId"].as_str().unwrap_or("?"));
    Ok(0)
}

/// `mcpctl login --token T`: checks the token against the server, then stores both.
pub fn login(cli: &Cli) -> anyhow::Result<u8> {
    let Some(login_token) = cli.token.clone() else {
        anyhow::bail!("give the token to store: mcpctl login --token <token>");
    };
    let server = config::server(cli.server.clone())?;
    let ca = config::certificate_authority(cli.certificate_authority.clone())?;
    let client = Client::new(server.clone(), cli.retry_timeout, Some(&login_token), ca.as_deref())?;
    let me = client.get("/api/v1/whoami")?.into_success()?;
    let mut config = config::load()?;
    config.server = Some(server.clone());
    config.token = Some(login_token.trim().to_owned());
    if let Some(ca) = cli.certificate_authority.clone() {
        // Stored as an absolute path: the config is read from any directory.
        config.certificate_authority = Some(std::path::absolute(&ca).unwrap_or(ca));
    }
    let path = config::save(&config)?;
    out!("logged in to {server} as {} (saved in {})", me["user"].as_str().unwrap_or("?"), path.display());
    Ok(0)
}

/// `mcpctl config set-server URL`.
pub fn set_server(url: &str) -> anyhow::Result<u8> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        anyhow::bail!("the server URL must start with http:// or https://, not {url:?}");
    }
    let mut config = config::load()?;
    config.server = Some(url.trim_end_matches('/').to_owned());
    let path = config::save(&config)?;
    out!("server set to {} in {}", config.server.unwrap_or_default(), path.display());
    Ok(0)
}

/// `mcpctl config view`: the file's settings (the token shown only as present) and the server
/// mcpctl would use.
pub fn view_config(server: Option<String>) -> anyhow::Result<u8> {
    let config = config::load()?;
    let mut from_file = serde_json::to_value(&config)?;
    if from_file.get("token").is_some() {
        // The token is a credential: shown as present, never printed.
        from_file["token"] = serde_json::json!("(hidden)");
    }
    let shown = serde_json::json!({
        "path": config::path()?.display().to_string(),
        "server": config::server(server)?,
        "fromFile": from_file,
    });
    out!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(0)
}
