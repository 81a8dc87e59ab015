"""HTTP plumbing the front ends (the native API, S3) share: the request body as a
ByteSource, the verified caller on a request, admission before ``100 Continue``, and which
HTTP status each of our errors gets."""
