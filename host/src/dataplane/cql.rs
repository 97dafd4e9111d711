//! A small client of Cassandra's native protocol (CQL binary protocol v4, v3 as fallback),
//! enough for the schema statements the host runs for policies (`drop-keyspace`).
//!
//! One connection runs one request at a time: the host never pipelines schema changes, and
//! a session is opened for one operation and dropped after it. Every step has a deadline
//! (connect, then each request/answer), so a node that stops answering fails the operation
//! instead of holding it. Authentication is SASL PLAIN, as Cassandra's
//! `PasswordAuthenticator` (and DSE's `DseAuthenticator`, after it names the mechanism)
//! expects. Client encryption (TLS) is not spoken: a node that requires it closes a plain
//! connection, which is reported as such.
//!
//! The password only ever travels in the AUTH_RESPONSE frame; errors never carry it.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::Password;

/// Opcodes of the native protocol (section 2.4 of the spec).
pub mod opcode {
    pub const ERROR: u8 = 0x00;
    pub const STARTUP: u8 = 0x01;
    pub const READY: u8 = 0x02;
    pub const AUTHENTICATE: u8 = 0x03;
    pub const OPTIONS: u8 = 0x05;
    pub const SUPPORTED: u8 = 0x06;
    pub const QUERY: u8 = 0x07;
    pub const RESULT: u8 = 0x08;
    pub const EVENT: u8 = 0x0C;
    pub const AUTH_CHALLENGE: u8 = 0x0E;
    pub const AUTH_RESPONSE: u8 = 0x0F;
    pub const AUTH_SUCCESS: u8 = 0x10;
}

/// Header flags of a frame.
const FLAG_COMPRESSION: u8 = 0x01;
const FLAG_TRACING: u8 = 0x02;
const FLAG_CUSTOM_PAYLOAD: u8 = 0x04;
const FLAG_WARNING: u8 = 0x08;

const HEADER_LEN: usize = 9;
/// Larger answers are refused: nothing the host asks returns more than a few rows, and a
/// corrupt length must not make it allocate gigabytes.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Protocol versions tried, newest first.
const VERSIONS: [u8; 2] = [4, 3];
const CQL_VERSION: &str = "3.0.0";
const DSE_AUTHENTICATOR: &str = "DseAuthenticator";

/// The error codes of an ERROR frame (section 9 of the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Server,
    Protocol,
    BadCredentials,
    Unavailable,
    Overloaded,
    IsBootstrapping,
    Truncate,
    WriteTimeout,
    ReadTimeout,
    ReadFailure,
    FunctionFailure,
    WriteFailure,
    Syntax,
    Unauthorized,
    Invalid,
    Config,
    AlreadyExists,
    Unprepared,
    Other(u32),
}

impl ErrorCode {
    pub fn from_code(code: u32) -> Self {
        match code {
            0x0000 => Self::Server,
            0x000A => Self::Protocol,
            0x0100 => Self::BadCredentials,
            0x1000 => Self::Unavailable,
            0x1001 => Self::Overloaded,
            0x1002 => Self::IsBootstrapping,
            0x1003 => Self::Truncate,
            0x1100 => Self::WriteTimeout,
            0x1200 => Self::ReadTimeout,
            0x1300 => Self::ReadFailure,
            0x1400 => Self::FunctionFailure,
            0x1500 => Self::WriteFailure,
            0x2000 => Self::Syntax,
            0x2100 => Self::Unauthorized,
            0x2200 => Self::Invalid,
            0x2300 => Self::Config,
            0x2400 => Self::AlreadyExists,
            0x2500 => Self::Unprepared,
            other => Self::Other(other),
        }
    }

    pub fn code(self) -> u32 {
        match self {
            Self::Server => 0x0000,
            Self::Protocol => 0x000A,
            Self::BadCredentials => 0x0100,
            Self::Unavailable => 0x1000,
            Self::Overloaded => 0x1001,
            Self::IsBootstrapping => 0x1002,
            Self::Truncate => 0x1003,
            Self::WriteTimeout => 0x1100,
            Self::ReadTimeout => 0x1200,
            Self::ReadFailure => 0x1300,
            Self::FunctionFailure => 0x1400,
            Self::WriteFailure => 0x1500,
            Self::Syntax => 0x2000,
            Self::Unauthorized => 0x2100,
            Self::Invalid => 0x2200,
            Self::Config => 0x2300,
            Self::AlreadyExists => 0x2400,
            Self::Unprepared => 0x2500,
            Self::Other(c) => c,
        }
    }

    /// The spec's name of the code.
    pub fn name(self) -> &'static str {
        match self {
            Self::Server => "Server error",
            Self::Protocol => "Protocol error",
            Self::BadCredentials => "Bad credentials",
            Self::Unavailable => "Unavailable",
            Self::Overloaded => "Overloaded",
            Self::IsBootstrapping => "Is bootstrapping",
            Self::Truncate => "Truncate error",
            Self::WriteTimeout => "Write timeout",
            Self::ReadTimeout => "Read timeout",
            Self::ReadFailure => "Read failure",
            Self::FunctionFailure => "Function failure",
            Self::WriteFailure => "Write failure",
            Self::Syntax => "Syntax error",
            Self::Unauthorized => "Unauthorized",
            Self::Invalid => "Invalid",
            Self::Config => "Config error",
            Self::AlreadyExists => "Already exists",
            Self::Unprepared => "Unprepared",
            Self::Other(_) => "Unknown error",
        }
    }
}

/// A failed CQL exchange. Every variant names the node's endpoint.
#[derive(Debug, thiserror::Error)]
pub enum CqlError {
    #[error("CQL {endpoint}: cannot connect: {source}")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("CQL {endpoint}: no answer to {step} within {timeout:?}")]
    Timeout {
        endpoint: String,
        step: &'static str,
        timeout: Duration,
    },
    #[error(
        "CQL {endpoint}: the node closed the connection during {step}; a node whose datacenter \
         requires client encryption (client_encryption_options) closes plain connections, and \
         this operator does not speak CQL over TLS"
    )]
    Closed {
        endpoint: String,
        step: &'static str,
    },
    #[error(
        "CQL {endpoint}: the node answered TLS to a plain connection: its datacenter requires \
         client encryption, and this operator does not speak CQL over TLS"
    )]
    TlsRequired { endpoint: String },
    #[error("CQL {endpoint}: {step}: {source}")]
    Io {
        endpoint: String,
        step: &'static str,
        source: std::io::Error,
    },
    #[error("CQL {endpoint}: malformed answer to {step}: {reason}")]
    Malformed {
        endpoint: String,
        step: &'static str,
        reason: String,
    },
    #[error("CQL {endpoint}: {step} answered {} (0x{:04X}): {message}", .code.name(), .code.code())]
    Server {
        endpoint: String,
        step: &'static str,
        code: ErrorCode,
        message: String,
    },
    #[error(
        "CQL {endpoint}: the node requires authentication ({authenticator}) and no credentials were given"
    )]
    AuthRequired {
        endpoint: String,
        authenticator: String,
    },
}

impl CqlError {
    /// The server's error code, for an ERROR answer.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            CqlError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A role's credentials, for SASL PLAIN.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Password,
}

/// Deadlines of a session.
#[derive(Debug, Clone, Copy)]
pub struct CqlTimeouts {
    pub connect: Duration,
    /// Each request until its answer; a schema change waits for the other nodes' agreement
    /// (10 s by default in Cassandra) before answering, so this is longer than that.
    pub call: Duration,
}

impl Default for CqlTimeouts {
    fn default() -> Self {
        CqlTimeouts {
            connect: Duration::from_secs(5),
            call: Duration::from_secs(30),
        }
    }
}

/// Consistency levels (section 3 of the spec). Schema statements ignore the level, but the
/// QUERY frame must name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Consistency {
    One = 0x0001,
    Quorum = 0x0004,
    All = 0x0005,
    LocalQuorum = 0x0006,
    LocalOne = 0x000A,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The protocol version, without the direction bit.
    pub version: u8,
    pub response: bool,
    pub flags: u8,
    pub stream: i16,
    pub opcode: u8,
    pub body: Vec<u8>,
}

impl Frame {
    pub fn request(version: u8, stream: i16, opcode: u8, body: Vec<u8>) -> Self {
        Frame {
            version,
            response: false,
            flags: 0,
            stream,
            opcode,
            body,
        }
    }

    /// The frame's bytes: the 9-byte header, then the body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.body.len());
        out.push(self.version | if self.response { 0x80 } else { 0 });
        out.push(self.flags);
        out.extend_from_slice(&self.stream.to_be_bytes());
        out.push(self.opcode);
        out.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// Parses a header; returns the frame without its body and the body's length.
    pub fn decode_header(h: &[u8; HEADER_LEN]) -> Result<(Frame, usize), String> {
        let version = h[0] & 0x7F;
        if !(3..=5).contains(&version) {
            return Err(format!("protocol version {version} is not 3, 4 or 5"));
        }
        let len = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) as usize;
        if len > MAX_BODY {
            return Err(format!("body of {len} bytes exceeds {MAX_BODY}"));
        }
        Ok((
            Frame {
                version,
                response: h[0] & 0x80 != 0,
                flags: h[1],
                stream: i16::from_be_bytes([h[2], h[3]]),
                opcode: h[4],
                body: Vec::new(),
            },
            len,
        ))
    }

    /// The body after the optional tracing id, warnings and custom payload of a response
    /// (in that order, as Cassandra writes them), with the warnings.
    fn payload(&self) -> Result<(Reader<'_>, Vec<String>), String> {
        if self.flags & FLAG_COMPRESSION != 0 {
            return Err("the body is compressed, which was not asked for".into());
        }
        let mut r = Reader::new(&self.body);
        if self.flags & FLAG_TRACING != 0 {
            r.take(16)?;
        }
        let warnings = if self.flags & FLAG_WARNING != 0 {
            r.string_list()?
        } else {
            Vec::new()
        };
        if self.flags & FLAG_CUSTOM_PAYLOAD != 0 {
            let n = r.short()?;
            for _ in 0..n {
                r.string()?;
                r.bytes()?;
            }
        }
        Ok((r, warnings))
    }
}

/// Writes the protocol's notations (section 3).
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn short(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn int(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn byte(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.short(s.len() as u16);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn long_string(&mut self, s: &str) -> &mut Self {
        self.int(s.len() as i32);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn bytes(&mut self, b: Option<&[u8]>) -> &mut Self {
        match b {
            None => self.int(-1),
            Some(b) => {
                self.int(b.len() as i32);
                self.0.extend_from_slice(b);
                self
            }
        }
    }
    pub fn string_map(&mut self, m: &[(&str, &str)]) -> &mut Self {
        self.short(m.len() as u16);
        for (k, v) in m {
            self.string(k).string(v);
        }
        self
    }
}

/// Reads the protocol's notations; every read checks the length left.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!(
                "{n} bytes expected, {} left in the body",
                self.buf.len()
            ));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    pub fn short(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn int(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn string(&mut self) -> Result<String, String> {
        let n = self.short()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| "a [string] is not UTF-8".to_string())
    }
    pub fn long_string(&mut self) -> Result<String, String> {
        let n = self.int()?;
        let n = usize::try_from(n).map_err(|_| format!("negative [long string] length {n}"))?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| "a [long string] is not UTF-8".to_string())
    }
    pub fn bytes(&mut self) -> Result<Option<&'a [u8]>, String> {
        let n = self.int()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize)?))
    }
    pub fn string_list(&mut self) -> Result<Vec<String>, String> {
        let n = self.short()?;
        (0..n).map(|_| self.string()).collect()
    }
    pub fn string_map(&mut self) -> Result<BTreeMap<String, String>, String> {
        let n = self.short()?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let k = self.string()?;
            m.insert(k, self.string()?);
        }
        Ok(m)
    }
    pub fn string_multimap(&mut self) -> Result<BTreeMap<String, Vec<String>>, String> {
        let n = self.short()?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let k = self.string()?;
            m.insert(k, self.string_list()?);
        }
        Ok(m)
    }
    /// Skips an [option] naming a column type (section 4.2.5.2), with its nested types.
    fn skip_type(&mut self) -> Result<(), String> {
        match self.short()? {
            0x0000 => {
                self.string()?;
            }
            0x0020 | 0x0022 => self.skip_type()?,
            0x0021 => {
                self.skip_type()?;
                self.skip_type()?;
            }
            0x0030 => {
                self.string()?;
                self.string()?;
                for _ in 0..self.short()? {
                    self.string()?;
                    self.skip_type()?;
                }
            }
            0x0031 => {
                for _ in 0..self.short()? {
                    self.skip_type()?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Rows of a RESULT, values as the server sent them (column types are not interpreted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<Vec<u8>>>>,
}

impl Rows {
    /// The first row's value of a text column.
    pub fn first_text(&self, column: &str) -> Option<String> {
        let i = self.columns.iter().position(|c| c == column)?;
        let v = self.rows.first()?.get(i)?.as_ref()?;
        String::from_utf8(v.clone()).ok()
    }
}

/// The answer to a QUERY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryResult {
    Void,
    Rows(Rows),
    SetKeyspace(String),
    /// A schema change: its type (`CREATED`, `UPDATED`, `DROPPED`), target (`KEYSPACE`,
    /// `TABLE`, ...) and keyspace.
    SchemaChange {
        change: String,
        target: String,
        keyspace: String,
    },
    Prepared,
}

/// The body of a QUERY frame: the statement, its consistency and no values.
pub fn query_body(cql: &str, consistency: Consistency) -> Vec<u8> {
    let mut w = Writer::default();
    w.long_string(cql).short(consistency as u16).byte(0);
    w.0
}

/// Decodes an ERROR body: the code and the message.
pub fn decode_error(body: &mut Reader<'_>) -> Result<(ErrorCode, String), String> {
    let code = body.int()? as u32;
    let message = body.string()?;
    Ok((ErrorCode::from_code(code), message))
}

/// Decodes a RESULT body.
pub fn decode_result(r: &mut Reader<'_>) -> Result<QueryResult, String> {
    match r.int()? {
        0x0001 => Ok(QueryResult::Void),
        0x0002 => decode_rows(r).map(QueryResult::Rows),
        0x0003 => Ok(QueryResult::SetKeyspace(r.string()?)),
        0x0004 => Ok(QueryResult::Prepared),
        0x0005 => Ok(QueryResult::SchemaChange {
            change: r.string()?,
            target: r.string()?,
            keyspace: r.string()?,
        }),
        kind => Err(format!("unknown RESULT kind 0x{kind:04X}")),
    }
}

fn decode_rows(r: &mut Reader<'_>) -> Result<Rows, String> {
    let flags = r.int()?;
    let count = usize::try_from(r.int()?).map_err(|_| "negative column count".to_string())?;
    if flags & 0x0002 != 0 {
        r.bytes()?; // paging state
    }
    let mut columns = Vec::with_capacity(count.min(1024));
    if flags & 0x0004 == 0 {
        let global = flags & 0x0001 != 0;
        if global {
            r.string()?;
            r.string()?;
        }
        for _ in 0..count {
            if !global {
                r.string()?;
                r.string()?;
            }
            columns.push(r.string()?);
            r.skip_type()?;
        }
    }
    let n = usize::try_from(r.int()?).map_err(|_| "negative row count".to_string())?;
    let mut rows = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let row = (0..count)
            .map(|_| r.bytes().map(|b| b.map(<[u8]>::to_vec)))
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(row);
    }
    Ok(Rows { columns, rows })
}

/// The SASL PLAIN token: authorization id (empty), user, password, NUL-separated.
fn plain_token(c: &Credentials) -> Vec<u8> {
    let mut t = Vec::with_capacity(2 + c.username.len() + c.password.expose().len());
    t.push(0);
    t.extend_from_slice(c.username.as_bytes());
    t.push(0);
    t.extend_from_slice(c.password.expose().as_bytes());
    t
}

/// An open, ready CQL connection to one node.
pub struct CqlSession {
    stream: TcpStream,
    version: u8,
    endpoint: String,
    timeouts: CqlTimeouts,
    next_stream: i16,
    /// Warnings the node attached to its last answer.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for CqlSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CqlSession")
            .field("endpoint", &self.endpoint)
            .field("version", &self.version)
            .finish()
    }
}

/// What a handshake attempt ended with.
enum Attempt {
    Ready(CqlSession),
    /// The node refused this protocol version.
    Unsupported(CqlError),
}

impl CqlSession {
    /// Connects to `endpoint` (`host:port`), agrees on a protocol version (4, else 3) and
    /// authenticates when the node asks for it.
    pub async fn connect(
        endpoint: &str,
        credentials: Option<&Credentials>,
        timeouts: CqlTimeouts,
    ) -> Result<Self, CqlError> {
        let mut last = None;
        for version in VERSIONS {
            match Self::attempt(endpoint, version, credentials, timeouts).await? {
                Attempt::Ready(s) => return Ok(s),
                Attempt::Unsupported(e) => {
                    tracing::debug!(endpoint, version, error = %e, "CQL protocol version refused; trying an older one");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| CqlError::Malformed {
            endpoint: endpoint.to_string(),
            step: "the handshake",
            reason: "no protocol version to try".into(),
        }))
    }

    async fn attempt(
        endpoint: &str,
        version: u8,
        credentials: Option<&Credentials>,
        timeouts: CqlTimeouts,
    ) -> Result<Attempt, CqlError> {
        let stream =
            match tokio::time::timeout(timeouts.connect, TcpStream::connect(endpoint)).await {
                Err(_) => {
                    return Err(CqlError::Timeout {
                        endpoint: endpoint.to_string(),
                        step: "connect",
                        timeout: timeouts.connect,
                    });
                }
                Ok(Err(source)) => {
                    return Err(CqlError::Connect {
                        endpoint: endpoint.to_string(),
                        source,
                    });
                }
                Ok(Ok(s)) => s,
            };
        let _ = stream.set_nodelay(true);
        let mut s = CqlSession {
            stream,
            version,
            endpoint: endpoint.to_string(),
            timeouts,
            next_stream: 0,
            warnings: Vec::new(),
        };
        // OPTIONS first: the cheapest way to learn whether the node speaks this version.
        match s.call("OPTIONS", opcode::OPTIONS, Vec::new()).await {
            Ok(f) if f.opcode == opcode::SUPPORTED => {}
            Ok(f) => return Err(s.unexpected("OPTIONS", &f)),
            Err(e) if e.code() == Some(ErrorCode::Protocol) => {
                return Ok(Attempt::Unsupported(e));
            }
            Err(e) => return Err(e),
        }
        let mut body = Writer::default();
        body.string_map(&[("CQL_VERSION", CQL_VERSION)]);
        let f = s.call("STARTUP", opcode::STARTUP, body.0).await?;
        match f.opcode {
            opcode::READY => Ok(Attempt::Ready(s)),
            opcode::AUTHENTICATE => {
                let (mut r, _) = f
                    .payload()
                    .map_err(|reason| s.malformed("STARTUP", reason))?;
                let authenticator = r
                    .string()
                    .map_err(|reason| s.malformed("STARTUP", reason))?;
                let Some(credentials) = credentials else {
                    return Err(CqlError::AuthRequired {
                        endpoint: s.endpoint.clone(),
                        authenticator,
                    });
                };
                s.authenticate(&authenticator, credentials).await?;
                Ok(Attempt::Ready(s))
            }
            _ => Err(s.unexpected("STARTUP", &f)),
        }
    }

    async fn authenticate(
        &mut self,
        authenticator: &str,
        credentials: &Credentials,
    ) -> Result<(), CqlError> {
        const STEP: &str = "AUTH_RESPONSE";
        // DSE's authenticator first wants the mechanism's name, then challenges for the token.
        let first = if authenticator.ends_with(DSE_AUTHENTICATOR) {
            b"PLAIN".to_vec()
        } else {
            plain_token(credentials)
        };
        let mut token = Some(first);
        // PLAIN ends within two round trips; more challenges than that are not PLAIN's.
        for _ in 0..2 {
            let Some(t) = token.take() else { break };
            let mut body = Writer::default();
            body.bytes(Some(&t));
            let f = self.call(STEP, opcode::AUTH_RESPONSE, body.0).await?;
            match f.opcode {
                opcode::AUTH_SUCCESS => return Ok(()),
                opcode::AUTH_CHALLENGE => token = Some(plain_token(credentials)),
                _ => return Err(self.unexpected(STEP, &f)),
            }
        }
        Err(self.malformed(
            STEP,
            format!("authenticator {authenticator} kept challenging: it does not take SASL PLAIN"),
        ))
    }

    /// The protocol version agreed on.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// OPTIONS: what the node supports (`CQL_VERSION`, `COMPRESSION`, ...).
    pub async fn options(&mut self) -> Result<BTreeMap<String, Vec<String>>, CqlError> {
        let f = self.call("OPTIONS", opcode::OPTIONS, Vec::new()).await?;
        if f.opcode != opcode::SUPPORTED {
            return Err(self.unexpected("OPTIONS", &f));
        }
        let (mut r, _) = f.payload().map_err(|e| self.malformed("OPTIONS", e))?;
        r.string_multimap()
            .map_err(|e| self.malformed("OPTIONS", e))
    }

    /// Runs one statement.
    pub async fn query(
        &mut self,
        cql: &str,
        consistency: Consistency,
    ) -> Result<QueryResult, CqlError> {
        let f = self
            .call("QUERY", opcode::QUERY, query_body(cql, consistency))
            .await?;
        if f.opcode != opcode::RESULT {
            return Err(self.unexpected("QUERY", &f));
        }
        let (mut r, warnings) = f.payload().map_err(|e| self.malformed("QUERY", e))?;
        for w in &warnings {
            tracing::info!(endpoint = %self.endpoint, warning = %w, "CQL warning");
        }
        self.warnings = warnings;
        decode_result(&mut r).map_err(|e| self.malformed("QUERY", e))
    }

    /// Sends one request and reads its answer within the call deadline; an ERROR answer
    /// becomes [`CqlError::Server`].
    async fn call(
        &mut self,
        step: &'static str,
        opcode: u8,
        body: Vec<u8>,
    ) -> Result<Frame, CqlError> {
        let stream_id = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(1) & 0x7FFF;
        let frame = Frame::request(self.version, stream_id, opcode, body);
        let timeout = self.timeouts.call;
        let answer = tokio::time::timeout(timeout, async {
            self.stream
                .write_all(&frame.encode())
                .await
                .map_err(|e| self.io(step, e))?;
            loop {
                let f = self.read_frame(step).await?;
                // Events (stream -1) are never asked for; skip anything not ours.
                if f.opcode == opcode::EVENT || f.stream != stream_id {
                    continue;
                }
                return Ok(f);
            }
        })
        .await
        .map_err(|_| CqlError::Timeout {
            endpoint: self.endpoint.clone(),
            step,
            timeout,
        })??;
        if answer.opcode == opcode::ERROR {
            let (mut r, _) = answer.payload().map_err(|e| self.malformed(step, e))?;
            let (code, message) = decode_error(&mut r).map_err(|e| self.malformed(step, e))?;
            return Err(CqlError::Server {
                endpoint: self.endpoint.clone(),
                step,
                code,
                message,
            });
        }
        Ok(answer)
    }

    async fn read_frame(&mut self, step: &'static str) -> Result<Frame, CqlError> {
        let mut header = [0u8; HEADER_LEN];
        if let Err(e) = self.stream.read_exact(&mut header).await {
            return Err(self.io(step, e));
        }
        // A TLS record (alert 0x15, handshake 0x16) where a response header should be.
        if matches!(header[0], 0x15 | 0x16) && header[1] == 0x03 {
            return Err(CqlError::TlsRequired {
                endpoint: self.endpoint.clone(),
            });
        }
        let (mut frame, len) =
            Frame::decode_header(&header).map_err(|reason| self.malformed(step, reason))?;
        if !frame.response {
            return Err(self.malformed(step, "a request frame where an answer was due".into()));
        }
        let mut body = vec![0u8; len];
        if let Err(e) = self.stream.read_exact(&mut body).await {
            return Err(self.io(step, e));
        }
        frame.body = body;
        Ok(frame)
    }

    fn io(&self, step: &'static str, e: std::io::Error) -> CqlError {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                CqlError::Closed {
                    endpoint: self.endpoint.clone(),
                    step,
                }
            }
            _ => CqlError::Io {
                endpoint: self.endpoint.clone(),
                step,
                source: e,
            },
        }
    }

    fn malformed(&self, step: &'static str, reason: String) -> CqlError {
        CqlError::Malformed {
            endpoint: self.endpoint.clone(),
            step,
            reason,
        }
    }

    fn unexpected(&self, step: &'static str, f: &Frame) -> CqlError {
        self.malformed(step, format!("unexpected opcode 0x{:02X}", f.opcode))
    }
}

/// Whether `name` is a CQL identifier the host may put in a statement: unquoted CQL names
/// are `[a-zA-Z][a-zA-Z0-9_]*`, and keyspace names are at most 48 characters.
pub fn valid_keyspace_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 48
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A keyspace name quoted for a statement (case kept). Only call with a valid name.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_encode_the_header_then_the_body() {
        let f = Frame::request(4, 7, opcode::OPTIONS, Vec::new());
        assert_eq!(f.encode(), vec![0x04, 0, 0, 7, 0x05, 0, 0, 0, 0]);
        let mut w = Writer::default();
        w.string_map(&[("CQL_VERSION", "3.0.0")]);
        let f = Frame::request(3, 1, opcode::STARTUP, w.0.clone());
        let bytes = f.encode();
        assert_eq!(&bytes[..5], &[0x03, 0, 0, 1, 0x01]);
        assert_eq!(&bytes[5..9], &(w.0.len() as u32).to_be_bytes());
        assert_eq!(
            &bytes[9..],
            b"\x00\x01\x00\x0bCQL_VERSION\x00\x053.0.0".as_slice()
        );
    }

    #[test]
    fn headers_decode_and_refuse_what_is_not_a_frame() {
        let mut h = [0u8; 9];
        h.copy_from_slice(&[0x84, 0x08, 0xFF, 0xFF, 0x0C, 0, 0, 0, 3]);
        let (f, len) = Frame::decode_header(&h).expect("header");
        assert!(f.response);
        assert_eq!(
            (f.version, f.flags, f.stream, f.opcode, len),
            (4, 8, -1, 0x0C, 3)
        );
        // An HTTP answer where a frame is due.
        h.copy_from_slice(b"HTTP/1.1 ");
        assert!(Frame::decode_header(&h).is_err());
        h.copy_from_slice(&[0x84, 0, 0, 0, 0x08, 0x7F, 0, 0, 0]);
        assert!(
            Frame::decode_header(&h)
                .expect_err("too long")
                .contains("exceeds")
        );
    }

    #[test]
    fn query_bodies_carry_the_statement_consistency_and_no_values() {
        let body = query_body("DROP KEYSPACE IF EXISTS \"ks\"", Consistency::Quorum);
        let mut r = Reader::new(&body);
        assert_eq!(
            r.long_string().expect("query"),
            "DROP KEYSPACE IF EXISTS \"ks\""
        );
        assert_eq!(r.short().expect("consistency"), 0x0004);
        assert_eq!(r.take(1).expect("flags"), &[0]);
        assert!(r.take(1).is_err(), "nothing after the flags");
    }

    #[test]
    fn errors_decode_to_a_named_code() {
        let mut w = Writer::default();
        w.int(0x2200).string("Keyspace 'x' doesn't exist");
        let (code, msg) = decode_error(&mut Reader::new(&w.0)).expect("error");
        assert_eq!(code, ErrorCode::Invalid);
        assert_eq!(msg, "Keyspace 'x' doesn't exist");
        for (c, name) in [
            (0x0100, "Bad credentials"),
            (0x2100, "Unauthorized"),
            (0x1000, "Unavailable"),
            (0x2400, "Already exists"),
            (0x000A, "Protocol error"),
        ] {
            let code = ErrorCode::from_code(c);
            assert_eq!(code.name(), name);
            assert_eq!(code.code(), c);
        }
        assert_eq!(ErrorCode::from_code(0x9999), ErrorCode::Other(0x9999));
        let e = CqlError::Server {
            endpoint: "10.0.0.1:9042".into(),
            step: "QUERY",
            code: ErrorCode::Unauthorized,
            message: "Cannot DROP <keyspace system_auth>".into(),
        };
        assert_eq!(
            e.to_string(),
            "CQL 10.0.0.1:9042: QUERY answered Unauthorized (0x2100): Cannot DROP <keyspace system_auth>"
        );
    }

    #[test]
    fn results_decode_every_kind_the_host_meets() {
        let mut w = Writer::default();
        w.int(1);
        assert_eq!(
            decode_result(&mut Reader::new(&w.0)).expect("void"),
            QueryResult::Void
        );
        let mut w = Writer::default();
        w.int(3).string("ks");
        assert_eq!(
            decode_result(&mut Reader::new(&w.0)).expect("use"),
            QueryResult::SetKeyspace("ks".into())
        );
        let mut w = Writer::default();
        w.int(5).string("DROPPED").string("KEYSPACE").string("ks");
        assert_eq!(
            decode_result(&mut Reader::new(&w.0)).expect("schema change"),
            QueryResult::SchemaChange {
                change: "DROPPED".into(),
                target: "KEYSPACE".into(),
                keyspace: "ks".into()
            }
        );
        // Rows with global table spec, a varchar and a map<text,int> column, one row.
        let mut w = Writer::default();
        w.int(2).int(0x0001).int(2).string("system").string("local");
        w.string("release_version").short(0x000D);
        w.string("m").short(0x0021).short(0x000D).short(0x0009);
        w.int(1).bytes(Some(b"4.1.3")).bytes(None);
        let QueryResult::Rows(rows) = decode_result(&mut Reader::new(&w.0)).expect("rows") else {
            panic!("rows expected");
        };
        assert_eq!(rows.columns, vec!["release_version", "m"]);
        assert_eq!(rows.first_text("release_version").as_deref(), Some("4.1.3"));
        assert_eq!(rows.rows[0][1], None);
        // Truncated bodies are errors, not panics.
        assert!(decode_result(&mut Reader::new(&w.0[..w.0.len() - 3])).is_err());
        assert!(decode_result(&mut Reader::new(&[0, 0, 0, 9])).is_err());
    }

    #[test]
    fn response_payload_skips_tracing_and_reads_warnings() {
        let mut w = Writer::default();
        w.0.extend_from_slice(&[0xAB; 16]);
        w.short(1).string("Aggregation query used");
        w.int(1);
        let f = Frame {
            version: 4,
            response: true,
            flags: FLAG_TRACING | FLAG_WARNING,
            stream: 0,
            opcode: opcode::RESULT,
            body: w.0,
        };
        let (mut r, warnings) = f.payload().expect("payload");
        assert_eq!(warnings, vec!["Aggregation query used"]);
        assert_eq!(decode_result(&mut r).expect("void"), QueryResult::Void);
    }

    #[test]
    fn plain_tokens_are_nul_separated() {
        let c = Credentials {
            username: "admin".into(),
            password: Password::new("s3cret"),
        };
        assert_eq!(plain_token(&c), b"\0admin\0s3cret".to_vec());
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    /// Reads one request frame from a fake server's connection.
    async fn read_request(s: &mut TcpStream) -> Option<Frame> {
        let mut h = [0u8; HEADER_LEN];
        s.read_exact(&mut h).await.ok()?;
        let (mut f, len) = Frame::decode_header(&h).ok()?;
        f.body = vec![0; len];
        s.read_exact(&mut f.body).await.ok()?;
        Some(f)
    }

    async fn answer(s: &mut TcpStream, req: &Frame, version: u8, opcode: u8, body: Vec<u8>) {
        let f = Frame {
            version,
            response: true,
            flags: 0,
            stream: req.stream,
            opcode,
            body,
        };
        let _ = s.write_all(&f.encode()).await;
    }

    async fn fake_server() -> (tokio::net::TcpListener, String) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        (l, addr)
    }

    fn quick() -> CqlTimeouts {
        CqlTimeouts {
            connect: Duration::from_secs(5),
            call: Duration::from_millis(300),
        }
    }

    #[tokio::test]
    async fn a_node_refusing_v4_is_spoken_to_in_v3() {
        let (l, addr) = fake_server().await;
        let server = tokio::spawn(async move {
            // First connection: v4 refused, as Cassandra 2.1 does.
            let (mut s, _) = l.accept().await.expect("accept");
            let req = read_request(&mut s).await.expect("request");
            assert_eq!(req.version, 4);
            let mut w = Writer::default();
            w.int(0x000A)
                .string("Invalid or unsupported protocol version (4)");
            answer(&mut s, &req, 3, opcode::ERROR, w.0).await;
            drop(s);
            // Second connection: v3 all the way.
            let (mut s, _) = l.accept().await.expect("accept");
            let mut seen = Vec::new();
            while let Some(req) = read_request(&mut s).await {
                seen.push((req.version, req.opcode));
                let (op, body) = match req.opcode {
                    opcode::OPTIONS => {
                        let mut w = Writer::default();
                        w.short(0);
                        (opcode::SUPPORTED, w.0)
                    }
                    opcode::STARTUP => (opcode::READY, Vec::new()),
                    _ => {
                        let mut w = Writer::default();
                        w.int(1);
                        (opcode::RESULT, w.0)
                    }
                };
                answer(&mut s, &req, 3, op, body).await;
            }
            seen
        });
        let mut session = CqlSession::connect(&addr, None, quick())
            .await
            .expect("session");
        assert_eq!(session.version(), 3);
        assert_eq!(
            session
                .query("DROP KEYSPACE IF EXISTS \"ks\"", Consistency::Quorum)
                .await
                .expect("query"),
            QueryResult::Void
        );
        drop(session);
        let seen = server.await.expect("server");
        assert_eq!(
            seen,
            vec![
                (3, opcode::OPTIONS),
                (3, opcode::STARTUP),
                (3, opcode::QUERY)
            ]
        );
    }

    #[tokio::test]
    async fn a_silent_node_fails_the_call_at_its_deadline() {
        let (l, addr) = fake_server().await;
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            // Reads, never answers, holds the connection open.
            let _ = read_request(&mut s).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        match CqlSession::connect(&addr, None, quick()).await {
            Err(CqlError::Timeout { step, .. }) => assert_eq!(step, "OPTIONS"),
            other => panic!("a timeout expected, got {other:?}"),
        }
        server.abort();
    }

    #[tokio::test]
    async fn a_node_answering_tls_is_reported_as_requiring_client_encryption() {
        let (l, addr) = fake_server().await;
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let _ = read_request(&mut s).await;
            // A TLS alert record (handshake failure), as a TLS-only port may send.
            let _ = s
                .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28, 0, 0])
                .await;
        });
        let e = CqlSession::connect(&addr, None, quick())
            .await
            .expect_err("TLS");
        assert!(matches!(e, CqlError::TlsRequired { .. }), "{e}");
        assert!(e.to_string().contains("client encryption"), "{e}");
    }

    #[test]
    fn keyspace_names_follow_cql_identifier_rules() {
        for ok in ["data_endpoint_auth", "ks1", "K", "Reaper_db"] {
            assert!(valid_keyspace_name(ok), "{ok}");
        }
        for bad in [
            "",
            "1ks",
            "_ks",
            "ks-1",
            "ks\"; DROP",
            "ks ks",
            "é",
            &"k".repeat(49),
        ] {
            assert!(!valid_keyspace_name(bad), "{bad}");
        }
        assert_eq!(quote_identifier("Ks"), "\"Ks\"");
    }
}
