"""HTTP plumbing the front ends (the native API, S3) share: the server under them with its
limits on slow and greedy clients (``server``), the request body as a ByteSource with its idle
deadline, the verified caller on a request, admission before ``100 Continue``, upload slots per
client and per gateway (``uploads``), and which HTTP status each of our errors gets."""
