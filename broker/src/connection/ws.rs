//! MQTT over WebSocket (MQTT 5.0 §6): the HTTP upgrade on the listener's
//! path with the `mqtt` subprotocol, then a task that moves binary frames
//! to and from one end of a socket pair. The connection drives the other
//! end exactly like a TCP socket, so everything after the upgrade is the
//! same code as for plain MQTT; the price is one small task and one copy
//! per direction for WebSocket clients only.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("WebSocket upgrade: {0}")]
    Handshake(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("socket pair: {0}")]
    Pair(#[from] std::io::Error),
}

/// Answers the HTTP upgrade on `path` and returns the socket the MQTT
/// connection reads and writes; frames are moved by a task of their own.
pub async fn upgrade<S>(stream: S, path: &str, max_packet_size: u32) -> Result<UnixStream, UpgradeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The callback's signature is tungstenite's; its error is the HTTP
    // response sent back, large by nature.
    #[expect(clippy::result_large_err, reason = "signature fixed by tungstenite")]
    let check = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != path {
            let mut not_found = ErrorResponse::new(Some("no MQTT here".into()));
            *not_found.status_mut() = StatusCode::NOT_FOUND;
            return Err(not_found);
        }
        // The server selects `mqtt` when the client offers it [MQTT-6.0.0-3]
        // [MQTT-6.0.0-4]; older clients offer `mqttv3.1`.
        let offered = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|p| *p == "mqtt" || *p == "mqttv3.1")
            .map(str::to_owned);
        if let Some(p) = offered
            && let Ok(v) = HeaderValue::from_str(&p)
        {
            resp.headers_mut().insert("sec-websocket-protocol", v);
        }
        Ok(resp)
    };
    let mut config = WebSocketConfig::default();
    // A frame or message larger than the largest MQTT packet is refused by
    // the WebSocket layer before it is buffered.
    let max = (max_packet_size as usize).saturating_add(16);
    config.max_message_size = Some(max);
    config.max_frame_size = Some(max);
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config)).await?;
    let (mqtt_side, ws_side) = UnixStream::pair()?;
    tokio::spawn(pump(ws, ws_side));
    Ok(mqtt_side)
}

/// Moves binary frames into the pair and the pair's bytes out as binary
/// frames, until either side closes.
async fn pump<S>(ws: tokio_tungstenite::WebSocketStream<S>, local: UnixStream)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut rd, mut wr) = local.into_split();
    let inbound = async {
        while let Some(msg) = ws_rx.next().await {
            match msg {
                // MQTT packets may span frames, and a frame may hold several
                // packets: the bytes are a stream [MQTT-6.0.0-2].
                Ok(Message::Binary(data)) => {
                    if wr.write_all(&data).await.is_err() {
                        break;
                    }
                }
                // Text frames are not MQTT: close [MQTT-6.0.0-1].
                Ok(Message::Text(_)) => break,
                Ok(Message::Close(_)) | Err(_) => break,
                // Pings are answered by tungstenite itself.
                Ok(_) => {}
            }
        }
        let _ = wr.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if ws_tx
                        .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        let _ = ws_tx.close().await;
    };
    // Whichever side ends first ends the other.
    tokio::select! {
        _ = inbound => {}
        _ = outbound => {}
    }
}
