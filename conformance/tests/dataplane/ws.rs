//! A minimal WebSocket (RFC 6455) echo endpoint for the echo pods and a client for the one
//! upstream WebSocket case: handshake, then single-frame text/binary messages.

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

fn accept_key(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{GUID}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Answers an upgrade request with 101 and echoes every frame on the upgraded connection.
pub(crate) fn accept(mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|k| k.to_str().ok())
        .unwrap_or("")
        .to_owned();
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(&mut req).await {
            let mut io = TokioIo::new(upgraded);
            while let Ok((opcode, payload)) = read_frame(&mut io).await {
                if opcode == 8 || write_frame(&mut io, opcode, &payload, None).await.is_err() {
                    break;
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept_key(&key))
        .body(Full::new(Bytes::new()))
        .expect("101 response")
}

/// Reads one frame: (opcode, unmasked payload).
pub(crate) async fn read_frame<S: AsyncRead + Unpin>(io: &mut S) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await?;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let mut len = u64::from(head[1] & 0x7f);
    if len == 126 {
        let mut ext = [0u8; 2];
        io.read_exact(&mut ext).await?;
        len = u64::from(u16::from_be_bytes(ext));
    } else if len == 127 {
        let mut ext = [0u8; 8];
        io.read_exact(&mut ext).await?;
        len = u64::from_be_bytes(ext);
    }
    if len > 1 << 20 {
        return Err(std::io::Error::other("frame too large"));
    }
    let mut mask = [0u8; 4];
    if masked {
        io.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; usize::try_from(len).unwrap_or(0)];
    io.read_exact(&mut payload).await?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok((opcode, payload))
}

/// Writes one final frame, masked when `mask` is given (clients must mask).
pub(crate) async fn write_frame<S: AsyncWrite + Unpin>(
    io: &mut S,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> std::io::Result<()> {
    let mut frame = vec![0x80 | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | u8::try_from(n).unwrap_or(0)),
        n if n <= usize::from(u16::MAX) => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&u16::try_from(n).unwrap_or(0).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => frame.extend_from_slice(payload),
    }
    io.write_all(&frame).await?;
    io.flush().await
}

/// Opens a WebSocket to `address` (Host `host`, path `path`), sends each message and checks it
/// comes back unchanged.
pub(crate) async fn round_trip(
    address: std::net::SocketAddr,
    host: &str,
    path: &str,
    origin: &str,
    messages: &[(u8, Vec<u8>)],
) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let key = base64::engine::general_purpose::STANDARD.encode(fastrand::u128(..).to_be_bytes());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write handshake: {e}"))?;
    // Read the response head byte by byte so no frame bytes are consumed with it.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream
            .read_exact(&mut byte)
            .await
            .map_err(|e| format!("read handshake: {e}"))?;
        head.push(byte[0]);
        if head.len() > 16 * 1024 {
            return Err("handshake response too long".to_owned());
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if !head.starts_with("HTTP/1.1 101") {
        return Err(format!(
            "handshake answered {:?}",
            head.lines().next().unwrap_or("")
        ));
    }
    let accept = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("sec-websocket-accept"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    if accept != accept_key(&key) {
        return Err(format!("Sec-WebSocket-Accept {accept:?} is wrong"));
    }
    for (opcode, payload) in messages {
        write_frame(
            &mut stream,
            *opcode,
            payload,
            Some(fastrand::u32(..).to_be_bytes()),
        )
        .await
        .map_err(|e| format!("send frame: {e}"))?;
        let (got_opcode, got) = read_frame(&mut stream)
            .await
            .map_err(|e| format!("read frame: {e}"))?;
        if got_opcode != *opcode || &got != payload {
            return Err(format!(
                "frame (opcode {opcode}, {} bytes) came back as (opcode {got_opcode}, {:?})",
                payload.len(),
                String::from_utf8_lossy(&got)
            ));
        }
    }
    Ok(())
}
