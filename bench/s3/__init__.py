"""The S3 front end against the native API on the same cluster: large transfers (boto3,
aws-cli, the native client), 4 KiB operations at concurrency 16, the gateway's memory during a
multipart upload, and the CPU cost of verifying a signature."""
