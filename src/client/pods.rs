//! The pods of a deployment, read from the websocket the official client uses
//! (`/ws/v2/deployments/{name}/pods`).

use super::*;

impl Client {
    // ----- pods -----

    /// The pods of a deployment: the first frame of the pods stream the official client reads
    /// (`ws(s)://HOST/ws/v2/deployments/{name}/pods?organization_name=&cluster=`,
    /// client.py:747-774), then the stream is closed. The websocket handshake goes through
    /// reqwest's HTTP/1 upgrade, so it uses the same TLS trust, proxy and token as every other
    /// call. One attempt, no retries: callers use it for diagnostics.
    pub async fn deployment_pods(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<Vec<api::KubePod>, ClientError> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::{protocol::Role, Message};

        let what = format!("list the pods of deployment {name:?}");
        let url = self.url(
            &["ws", "v2", "deployments", name, "pods"],
            &[("organization_name", ""), ("cluster", cluster)],
        )?;
        let transport = |e: &dyn std::fmt::Display| {
            ClientError::new(what.clone(), ErrorKind::Transport, None, e.to_string())
        };
        let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
        let resp = self
            .inner
            .http
            .get(url)
            .header(TOKEN_HEADER, self.inner.token.clone())
            .header(reqwest::header::CONNECTION, "Upgrade")
            .header(reqwest::header::UPGRADE, "websocket")
            .header(reqwest::header::SEC_WEBSOCKET_VERSION, "13")
            .header(reqwest::header::SEC_WEBSOCKET_KEY, key)
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let status = resp.status().as_u16();
        if status != 101 {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(ClientError::from_response(what, status, &body));
        }
        let upgraded = resp.upgrade().await.map_err(|e| transport(&e))?;
        let mut ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await;
        let first = tokio::time::timeout(self.inner.request_timeout, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => return Ok(t),
                    Some(Ok(Message::Close(_))) | None => {
                        return Err("the stream closed before sending the pods".to_string())
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.to_string()),
                }
            }
        })
        .await;
        let _ = ws.close(None).await;
        let text = match first {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(transport(&e)),
            Err(_) => return Err(transport(&"no pods frame within the request timeout")),
        };
        let frame: api::PodsFrame = serde_json::from_str(&text)
            .map_err(|e| ClientError::new(what.clone(), ErrorKind::Decode, None, e.to_string()))?;
        if frame.kind != "success" {
            return Err(ClientError::new(
                what,
                ErrorKind::Unexpected,
                None,
                format!("the pods stream said {}: {}", frame.kind, frame.message),
            ));
        }
        Ok(frame.payload.unwrap_or_default())
    }
}
