"""S3 request signatures (SigV4, presigned SigV2), aws-chunked payloads and checksums: pure code."""
