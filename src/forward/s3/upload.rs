//! Talking to the bucket, through `object_store` (signing, retries of one
//! request, multipart): an object is written in one PUT, or in parts above
//! [`MULTIPART_ABOVE`], which R2 and S3 both take for large objects.

use super::config::S3Output;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, PutPayload, RetryConfig};
use std::sync::Arc;
use std::time::Duration;

/// Objects larger than this go up in parts.
pub const MULTIPART_ABOVE: usize = 16 << 20;
/// Size of each part but the last (S3 and R2 want at least 5 MiB).
pub const PART_BYTES: usize = 8 << 20;

/// The output could not start.
#[derive(Debug, thiserror::Error)]
pub enum S3SetupError {
    /// The bucket client could not be built.
    #[error("s3 output {output}: {source}")]
    Client {
        /// The output.
        output: String,
        /// Why.
        #[source]
        source: object_store::Error,
    },
    /// The renderer thread could not start.
    #[error("s3 output {output}: cannot start its thread: {source}")]
    Thread {
        /// The output.
        output: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One output's bucket.
#[derive(Debug)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    /// Test hook: uploads tried, and whether they fail.
    #[cfg(test)]
    pub(crate) tried: std::sync::atomic::AtomicU64,
    #[cfg(test)]
    pub(crate) failing: std::sync::atomic::AtomicBool,
}

impl Bucket {
    /// A client for the output's bucket: path-style whenever an endpoint
    /// is set (R2, MinIO), plain HTTP only when the endpoint says so.
    pub fn new(o: &S3Output) -> Result<Bucket, S3SetupError> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&o.bucket)
            .with_region(&o.region)
            .with_access_key_id(o.access_key_id.expose())
            .with_secret_access_key(o.secret_access_key.expose())
            // The output retries a failed object itself, with its own backoff.
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(60),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(Duration::from_secs(120))
                    .with_connect_timeout(Duration::from_secs(10)),
            );
        if let Some(endpoint) = &o.endpoint {
            b = b
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(is_plain_http(endpoint));
        }
        let store = b.build().map_err(|source| S3SetupError::Client {
            output: o.name.clone(),
            source,
        })?;
        Ok(Bucket {
            store: Arc::new(store),
            #[cfg(test)]
            tried: Default::default(),
            #[cfg(test)]
            failing: Default::default(),
        })
    }

    /// A bucket on another store (tests: in memory).
    #[cfg(test)]
    pub(crate) fn on(store: Arc<dyn ObjectStore>) -> Bucket {
        Bucket {
            store,
            tried: Default::default(),
            failing: Default::default(),
        }
    }

    /// Writes `body` as `key`, replacing what is there (a resend after a
    /// crash writes the same key with the same records).
    pub async fn put(&self, key: &str, body: bytes::Bytes) -> Result<(), object_store::Error> {
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering;
            self.tried.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(object_store::Error::Generic {
                    store: "test",
                    source: "refused on purpose".into(),
                });
            }
        }
        let path = ObjectPath::from(key);
        if body.len() <= MULTIPART_ABOVE {
            self.store.put(&path, PutPayload::from(body)).await?;
            return Ok(());
        }
        let mut upload = self.store.put_multipart(&path).await?;
        let mut offset = 0;
        while offset < body.len() {
            let end = (offset + PART_BYTES).min(body.len());
            if let Err(e) = upload
                .put_part(PutPayload::from(body.slice(offset..end)))
                .await
            {
                let _ = upload.abort().await;
                return Err(e);
            }
            offset = end;
        }
        if let Err(e) = upload.complete().await {
            let _ = upload.abort().await;
            return Err(e);
        }
        Ok(())
    }
}

/// Whether `endpoint` is plain HTTP (a URL's scheme is case-insensitive).
pub fn is_plain_http(endpoint: &str) -> bool {
    endpoint
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_scheme_is_case_insensitive() {
        assert!(super::is_plain_http("http://127.0.0.1:9000"));
        assert!(super::is_plain_http("HTTP://minio:9000"));
        assert!(!super::is_plain_http("https://x.r2.cloudflarestorage.com"));
        assert!(!super::is_plain_http("http"));
    }
}
