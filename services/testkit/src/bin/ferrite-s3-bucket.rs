//! `ferrite-s3-bucket --endpoint URL --bucket NAME --access-key K --secret-key S`: create a
//! bucket on an S3-compatible server (used by `make cluster` for its MinIO).

use anyhow::{Context, bail};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (mut endpoint, mut bucket, mut key, mut secret) = (None, None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--endpoint" => endpoint = Some(value),
            "--bucket" => bucket = Some(value),
            "--access-key" => key = Some(value),
            "--secret-key" => secret = Some(value),
            other => bail!("unknown flag {other}"),
        }
    }
    let (Some(endpoint), Some(bucket), Some(key), Some(secret)) = (endpoint, bucket, key, secret)
    else {
        bail!(
            "usage: ferrite-s3-bucket --endpoint URL --bucket NAME --access-key K --secret-key S"
        );
    };
    ferrite_testkit::s3::create_bucket(&endpoint, &bucket, &key, &secret).await?;
    println!("bucket '{bucket}' ready at {endpoint}");
    Ok(())
}
