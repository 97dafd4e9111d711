//! Cassandra's native protocol (CQL, v3 and v4) on every simulated node's address, at the
//! port the pod's `cassandra` container names `native` (9042 when unnamed).
//!
//! The port is open only while the node's native transport would be: Cassandra running
//! (NORMAL or LEAVING; not while it starts, joins or is drained) and its pod alive. When the
//! node stops, the listener closes and open connections drop, as when the process dies, so
//! a client sees "connection refused" afterwards. A node whose configuration requires
//! client encryption closes plain connections without answering, as Cassandra's TLS
//! handler does.
//!
//! With `authenticator: PasswordAuthenticator` a client must log in (SASL PLAIN) with a
//! role the simulated cluster knows (created through the management API) that may log in.
//! Statements understood: `DROP KEYSPACE [IF EXISTS] <ks>` (recorded in the history as
//! `keyspace_drop`), `USE <ks>` and `SELECT release_version FROM system.local`; anything
//! else gets an ERROR frame, never a crash.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::core::Core;
use crate::model::PodKey;

/// Cassandra's native transport port.
pub const DEFAULT_CQL_PORT: u16 = 9042;
/// How often a listener checks whether its node still serves CQL.
const CHECK_EVERY: Duration = Duration::from_millis(250);
const MAX_BODY: usize = 1024 * 1024;

const OP_ERROR: u8 = 0x00;
const OP_STARTUP: u8 = 0x01;
const OP_READY: u8 = 0x02;
const OP_AUTHENTICATE: u8 = 0x03;
const OP_OPTIONS: u8 = 0x05;
const OP_SUPPORTED: u8 = 0x06;
const OP_QUERY: u8 = 0x07;
const OP_RESULT: u8 = 0x08;
const OP_REGISTER: u8 = 0x0B;
const OP_AUTH_RESPONSE: u8 = 0x0F;
const OP_AUTH_SUCCESS: u8 = 0x10;

const ERR_SERVER: u32 = 0x0000;
const ERR_PROTOCOL: u32 = 0x000A;
const ERR_BAD_CREDENTIALS: u32 = 0x0100;
const ERR_SYNTAX: u32 = 0x2000;
const ERR_UNAUTHORIZED: u32 = 0x2100;
const ERR_INVALID: u32 = 0x2200;

const PASSWORD_AUTHENTICATOR: &str = "org.apache.cassandra.auth.PasswordAuthenticator";

/// The port of the pod's `cassandra` container named `native`, or 9042.
pub(crate) fn native_port(pod: &Pod) -> Option<u16> {
    let cassandra = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "cassandra")?;
    let port = cassandra
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("native"))
        .map_or(i32::from(DEFAULT_CQL_PORT), |p| p.container_port);
    u16::try_from(port).ok()
}

/// What a connection needs to know about its node, read afresh for every frame.
#[derive(Debug, Clone)]
pub(crate) struct CqlFacts {
    /// The native transport is up.
    pub serving: bool,
    pub auth_required: bool,
    pub authorizer: bool,
    pub tls_required: bool,
    pub release_version: String,
}

/// An error answer: code and message.
pub(crate) type CqlFailure = (u32, String);

/// Runs the CQL port of one pod until aborted: bound while the node serves CQL, closed
/// (with every connection) while it does not.
pub(crate) fn spawn(core: Arc<Core>, key: PodKey, ip: std::net::IpAddr) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut bound: Option<(TcpListener, JoinSet<()>)> = None;
        loop {
            let facts = core.cql_facts(&key);
            let serving = facts.as_ref().is_some_and(|f| f.serving);
            if !serving && bound.take().is_some() {
                tracing::debug!(pod = %key, "CQL port closed");
            }
            if serving && bound.is_none() {
                let port = core.cql_port(&key).unwrap_or(DEFAULT_CQL_PORT);
                let addr = std::net::SocketAddr::new(ip, port);
                match TcpListener::bind(addr).await {
                    Ok(l) => {
                        tracing::debug!(pod = %key, %addr, "CQL port open");
                        bound = Some((l, JoinSet::new()));
                    }
                    Err(e) => {
                        tracing::warn!(pod = %key, %addr, error = %e, "cannot bind the CQL port; will retry")
                    }
                }
            }
            match bound.as_mut() {
                Some((listener, conns)) => {
                    tokio::select! {
                        accepted = listener.accept() => {
                            if let Ok((stream, _)) = accepted {
                                let _ = stream.set_nodelay(true);
                                conns.spawn(serve(Arc::clone(&core), key.clone(), stream));
                            }
                        }
                        _ = tokio::time::sleep(CHECK_EVERY) => {}
                    }
                    while conns.try_join_next().is_some() {}
                }
                None => tokio::time::sleep(CHECK_EVERY).await,
            }
        }
    })
}

struct Conn {
    core: Arc<Core>,
    key: PodKey,
    stream: TcpStream,
    started: bool,
    /// The logged-in role and whether it is a superuser; None before login (or without
    /// authentication, where everyone is anonymous).
    user: Option<(String, bool)>,
    keyspace: Option<String>,
}

async fn serve(core: Arc<Core>, key: PodKey, stream: TcpStream) {
    let mut c = Conn {
        core,
        key,
        stream,
        started: false,
        user: None,
        keyspace: None,
    };
    if c.core.cql_facts(&c.key).is_some_and(|f| f.tls_required) {
        // The TLS handler reads the first bytes, finds no TLS record, and closes.
        let mut buf = [0u8; 64];
        let _ = c.stream.read(&mut buf).await;
        return;
    }
    if let Err(e) = c.run().await {
        tracing::debug!(pod = %c.key, error = %e, "CQL connection ended");
    }
}

impl Conn {
    async fn run(&mut self) -> std::io::Result<()> {
        loop {
            let mut header = [0u8; 9];
            self.stream.read_exact(&mut header).await?;
            let version = header[0] & 0x7F;
            let stream_id = i16::from_be_bytes([header[2], header[3]]);
            let opcode = header[4];
            let len = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) as usize;
            if header[0] & 0x80 != 0 || len > MAX_BODY {
                let body = error_body(ERR_PROTOCOL, "Invalid frame");
                self.send(4, stream_id, OP_ERROR, body).await?;
                return Ok(());
            }
            let mut body = vec![0u8; len];
            self.stream.read_exact(&mut body).await?;
            if !(3..=4).contains(&version) {
                let msg = format!(
                    "Invalid or unsupported protocol version ({version}); supported versions are (3/v3, 4/v4)"
                );
                self.send(4, stream_id, OP_ERROR, error_body(ERR_PROTOCOL, &msg))
                    .await?;
                return Ok(());
            }
            // A node that stopped meanwhile: its process is gone, and so is the connection.
            let Some(facts) = self.core.cql_facts(&self.key).filter(|f| f.serving) else {
                return Ok(());
            };
            let (op, answer) = match self.handle(&facts, opcode, &body) {
                Ok(a) => a,
                Err((code, msg)) => (OP_ERROR, error_body(code, &msg)),
            };
            self.send(version, stream_id, op, answer).await?;
        }
    }

    async fn send(
        &mut self,
        version: u8,
        stream: i16,
        op: u8,
        body: Vec<u8>,
    ) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(9 + body.len());
        out.push(0x80 | version);
        out.push(0);
        out.extend_from_slice(&stream.to_be_bytes());
        out.push(op);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        self.stream.write_all(&out).await
    }

    fn handle(
        &mut self,
        facts: &CqlFacts,
        opcode: u8,
        body: &[u8],
    ) -> Result<(u8, Vec<u8>), CqlFailure> {
        let mut r = Reader(body);
        match opcode {
            OP_OPTIONS => {
                let mut w = Vec::new();
                put_short(&mut w, 3);
                put_string(&mut w, "CQL_VERSION");
                put_string_list(&mut w, &["3.4.5"]);
                put_string(&mut w, "COMPRESSION");
                put_string_list(&mut w, &[]);
                put_string(&mut w, "PROTOCOL_VERSIONS");
                put_string_list(&mut w, &["3/v3", "4/v4"]);
                Ok((OP_SUPPORTED, w))
            }
            OP_STARTUP => {
                if self.started {
                    return Err((
                        ERR_PROTOCOL,
                        "Unexpected message STARTUP, the connection is already initialized".into(),
                    ));
                }
                let options = r.string_map().map_err(protocol)?;
                if !options.iter().any(|(k, _)| k == "CQL_VERSION") {
                    return Err((
                        ERR_PROTOCOL,
                        "Missing value CQL_VERSION in STARTUP message".into(),
                    ));
                }
                self.started = true;
                if facts.auth_required {
                    let mut w = Vec::new();
                    put_string(&mut w, PASSWORD_AUTHENTICATOR);
                    Ok((OP_AUTHENTICATE, w))
                } else {
                    Ok((OP_READY, Vec::new()))
                }
            }
            OP_AUTH_RESPONSE => {
                if !self.started || !facts.auth_required {
                    return Err((ERR_PROTOCOL, "Unexpected message AUTH_RESPONSE".into()));
                }
                let token = r.bytes().map_err(protocol)?.unwrap_or_default();
                let mut parts = token.split(|b| *b == 0);
                let (_authz, user, password) = (parts.next(), parts.next(), parts.next());
                let (Some(user), Some(password)) = (user, password) else {
                    return Err((
                        ERR_BAD_CREDENTIALS,
                        "Authentication ID must not be null".into(),
                    ));
                };
                let user = String::from_utf8_lossy(user).to_string();
                let password = String::from_utf8_lossy(password).to_string();
                match self.core.cql_login(&self.key, &user, &password) {
                    Some(superuser) => {
                        self.user = Some((user, superuser));
                        let mut w = Vec::new();
                        put_int(&mut w, -1);
                        Ok((OP_AUTH_SUCCESS, w))
                    }
                    None => Err((
                        ERR_BAD_CREDENTIALS,
                        format!("Provided username {user} and/or password are incorrect"),
                    )),
                }
            }
            OP_REGISTER => {
                if !self.started {
                    return Err((
                        ERR_PROTOCOL,
                        "Unexpected message REGISTER, expecting STARTUP or OPTIONS".into(),
                    ));
                }
                Ok((OP_READY, Vec::new()))
            }
            OP_QUERY => {
                if !self.started {
                    return Err((
                        ERR_PROTOCOL,
                        "Unexpected message QUERY, expecting STARTUP or OPTIONS".into(),
                    ));
                }
                if facts.auth_required && self.user.is_none() {
                    return Err((ERR_UNAUTHORIZED, "You have not logged in".into()));
                }
                let query = r.long_string().map_err(protocol)?;
                r.short().map_err(protocol)?; // consistency: ignored by schema statements
                self.query(facts, &query)
            }
            other => Err((
                ERR_PROTOCOL,
                format!("Unknown or unsupported opcode 0x{other:02X}"),
            )),
        }
    }

    fn query(&mut self, facts: &CqlFacts, query: &str) -> Result<(u8, Vec<u8>), CqlFailure> {
        let mut t = Tokens::new(query);
        let first = t.word().unwrap_or_default();
        match first.as_str() {
            "drop" if t.keyword("keyspace") => {
                let if_exists = t.keyword("if") && t.keyword("exists");
                let ks = t.identifier().ok_or_else(|| syntax(query))?;
                t.end().ok_or_else(|| syntax(query))?;
                self.drop_keyspace(facts, &ks, if_exists)
            }
            "use" => {
                let ks = t.identifier().ok_or_else(|| syntax(query))?;
                t.end().ok_or_else(|| syntax(query))?;
                if !self.core.cql_keyspace_exists(&self.key, &ks) {
                    return Err((ERR_INVALID, format!("Keyspace '{ks}' does not exist")));
                }
                self.keyspace = Some(ks.clone());
                let mut w = Vec::new();
                put_int(&mut w, 0x0003);
                put_string(&mut w, &ks);
                Ok((OP_RESULT, w))
            }
            "select"
                if normalize(query).starts_with("select release_version from system.local") =>
            {
                let mut w = Vec::new();
                put_int(&mut w, 0x0002);
                put_int(&mut w, 0x0001); // global table spec
                put_int(&mut w, 1);
                put_string(&mut w, "system");
                put_string(&mut w, "local");
                put_string(&mut w, "release_version");
                put_short(&mut w, 0x000D); // varchar
                put_int(&mut w, 1);
                put_bytes(&mut w, facts.release_version.as_bytes());
                Ok((OP_RESULT, w))
            }
            "select" | "insert" | "update" | "delete" | "create" | "alter" | "drop"
            | "truncate" | "grant" | "revoke" | "list" | "batch" | "begin" => Err((
                ERR_INVALID,
                format!("the simulator does not run this statement: {query}"),
            )),
            _ => Err(syntax(query)),
        }
    }

    fn drop_keyspace(
        &mut self,
        facts: &CqlFacts,
        ks: &str,
        if_exists: bool,
    ) -> Result<(u8, Vec<u8>), CqlFailure> {
        // Cassandra's own keyspaces: the local ones may not change at all, the replicated
        // ones may only be altered.
        if matches!(
            ks,
            "system" | "system_schema" | "system_views" | "system_virtual_schema"
        ) {
            return Err((
                ERR_UNAUTHORIZED,
                format!("{ks} keyspace is not user-modifiable."),
            ));
        }
        if ks.starts_with("system") && self.core.cql_keyspace_exists(&self.key, ks) {
            return Err((ERR_UNAUTHORIZED, format!("Cannot DROP <keyspace {ks}>")));
        }
        if facts.authorizer
            && let Some((user, false)) = &self.user
        {
            return Err((
                ERR_UNAUTHORIZED,
                format!(
                    "User {user} has no DROP permission on <keyspace {ks}> or any of its parents"
                ),
            ));
        }
        match self.core.cql_drop_keyspace(&self.key, ks, if_exists)? {
            true => {
                if self.keyspace.as_deref() == Some(ks) {
                    self.keyspace = None;
                }
                let mut w = Vec::new();
                put_int(&mut w, 0x0005);
                put_string(&mut w, "DROPPED");
                put_string(&mut w, "KEYSPACE");
                put_string(&mut w, ks);
                Ok((OP_RESULT, w))
            }
            false => {
                let mut w = Vec::new();
                put_int(&mut w, 0x0001);
                Ok((OP_RESULT, w))
            }
        }
    }
}

fn protocol(reason: String) -> CqlFailure {
    (ERR_PROTOCOL, reason)
}

fn syntax(query: &str) -> CqlFailure {
    let near = query.split_whitespace().next().unwrap_or_default();
    (
        ERR_SYNTAX,
        format!("line 1:0 no viable alternative at input '{near}'"),
    )
}

/// Lower case, single spaces, no trailing semicolon.
fn normalize(q: &str) -> String {
    q.trim()
        .trim_end_matches(';')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

/// A tiny tokenizer: words, and identifiers quoted or not (unquoted ones fold to lower
/// case, as CQL's do).
struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Tokens<'a> {
    fn new(q: &'a str) -> Self {
        Tokens { rest: q.trim() }
    }

    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn word(&mut self) -> Option<String> {
        self.skip_ws();
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest.len());
        if end == 0 {
            return None;
        }
        let (w, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(w.to_ascii_lowercase())
    }

    /// Consumes `kw` (any case) if it comes next.
    fn keyword(&mut self, kw: &str) -> bool {
        let save = self.rest;
        if self.word().as_deref() == Some(kw) {
            return true;
        }
        self.rest = save;
        false
    }

    fn identifier(&mut self) -> Option<String> {
        self.skip_ws();
        if let Some(quoted) = self.rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                if c == '"' {
                    if chars.peek().map(|(_, c)| *c) == Some('"') {
                        chars.next();
                        out.push('"');
                        continue;
                    }
                    self.rest = &quoted[i + 1..];
                    return (!out.is_empty()).then_some(out);
                }
                out.push(c);
            }
            return None;
        }
        let w = self.word()?;
        w.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            .then_some(w)
    }

    fn end(&mut self) -> Option<()> {
        self.skip_ws();
        let rest = self.rest.trim_start_matches(';').trim();
        rest.is_empty().then_some(())
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("Not enough bytes to read the frame".into());
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
    fn short(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn int(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.short()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).to_string())
    }
    fn long_string(&mut self) -> Result<String, String> {
        let n = usize::try_from(self.int()?).map_err(|_| "negative length".to_string())?;
        Ok(String::from_utf8_lossy(self.take(n)?).to_string())
    }
    fn bytes(&mut self) -> Result<Option<Vec<u8>>, String> {
        let n = self.int()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize)?.to_vec()))
    }
    fn string_map(&mut self) -> Result<Vec<(String, String)>, String> {
        let n = self.short()?;
        (0..n)
            .map(|_| Ok((self.string()?, self.string()?)))
            .collect()
    }
}

fn put_short(w: &mut Vec<u8>, v: u16) {
    w.extend_from_slice(&v.to_be_bytes());
}
fn put_int(w: &mut Vec<u8>, v: i32) {
    w.extend_from_slice(&v.to_be_bytes());
}
fn put_string(w: &mut Vec<u8>, s: &str) {
    put_short(w, s.len() as u16);
    w.extend_from_slice(s.as_bytes());
}
fn put_string_list(w: &mut Vec<u8>, l: &[&str]) {
    put_short(w, l.len() as u16);
    for s in l {
        put_string(w, s);
    }
}
fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_int(w, b.len() as i32);
    w.extend_from_slice(b);
}

fn error_body(code: u32, message: &str) -> Vec<u8> {
    let mut w = Vec::new();
    put_int(&mut w, code as i32);
    put_string(&mut w, message);
    w
}

/// The error an internal failure of the simulator answers with.
pub(crate) fn server_error(message: impl Into<String>) -> CqlFailure {
    (ERR_SERVER, message.into())
}

/// The error for a keyspace that does not exist.
pub(crate) fn no_such_keyspace(ks: &str) -> CqlFailure {
    (ERR_INVALID, format!("Keyspace '{ks}' doesn't exist"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_tokenize_like_cql() {
        let mut t = Tokens::new("DROP KEYSPACE IF EXISTS \"Data\"\"x\" ;");
        assert_eq!(t.word().as_deref(), Some("drop"));
        assert!(t.keyword("keyspace"));
        assert!(t.keyword("if") && t.keyword("exists"));
        assert_eq!(t.identifier().as_deref(), Some("Data\"x"));
        assert!(t.end().is_some());
        let mut t = Tokens::new("drop keyspace Data_Endpoint_Auth extra");
        t.word();
        assert!(t.keyword("keyspace"));
        assert!(!t.keyword("if"));
        assert_eq!(t.identifier().as_deref(), Some("data_endpoint_auth"));
        assert!(t.end().is_none());
        assert_eq!(
            normalize("SELECT  release_version\nFROM system.local;"),
            "select release_version from system.local"
        );
    }
}
