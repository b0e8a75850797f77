//! The PROXY protocol (v1 text, v2 binary, as HAProxy and cloud load
//! balancers send it): on a listener that expects it, the first bytes name
//! the real client, and the connection goes by that address from then on.

use std::net::SocketAddr;

use ppp::{HeaderResult, PartialResult};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// v2's fixed part plus the longest address block (two UNIX paths) and
/// room for TLVs; v1 is at most 107 bytes.
const MAX_HEADER: usize = 536;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("not a PROXY protocol header")]
    Invalid,
    #[error("PROXY header longer than {MAX_HEADER} bytes")]
    TooLong,
    #[error("connection closed inside the PROXY header")]
    Eof,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads the PROXY header off `stream` and returns the client address it
/// names; `None` for a header that names none (v1 `UNKNOWN`, v2 `LOCAL`
/// health checks), which keeps the socket's own peer. Bytes after the
/// header are left in the socket.
pub async fn read_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyError> {
    let mut buf = [0u8; MAX_HEADER];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(ProxyError::Eof);
        }
        let parsed = HeaderResult::parse(&buf[..n]);
        if parsed.is_incomplete() {
            if n == MAX_HEADER {
                return Err(ProxyError::TooLong);
            }
            // Wait for more: peek again once the socket has grown.
            stream.readable().await?;
            continue;
        }
        let (len, addr) = match parsed {
            HeaderResult::V1(Ok(h)) => (
                h.header.len(),
                match h.addresses {
                    ppp::v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                    ppp::v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                    ppp::v1::Addresses::Unknown => None,
                },
            ),
            // LOCAL: the proxy's own connection (a health check); the
            // addresses, if any, are to be ignored.
            HeaderResult::V2(Ok(h)) if h.command == ppp::v2::Command::Local => (h.len(), None),
            HeaderResult::V2(Ok(h)) => (
                h.len(),
                match h.addresses {
                    ppp::v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                    ppp::v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                    ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
                },
            ),
            _ => return Err(ProxyError::Invalid),
        };
        let mut header = vec![0u8; len];
        stream.read_exact(&mut header).await?;
        return Ok(addr);
    }
}
